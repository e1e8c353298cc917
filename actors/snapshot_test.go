package actors_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	journaltest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}

// TestIdleGroupsStayInMemory: an idle group's actor stops but leaves a
// snapshot, from which the next call is served without reading the
// journal, request IDs included; a snapshot made stale by another writer
// is caught by the journal's fencing.
func TestIdleGroupsStayInMemory(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.ActorIdle, c.PassivateAfter = time.Millisecond, time.Hour })
	n := e.node
	inc := &messages.Change{Op: messages.Op_OP_INCREASE, Key: "k", Amount: 1, RequestId: "r1"}
	first := change(t, n, "", "g", inc)
	change(t, n, "", "g", set(map[string]int64{"a": 7, "b": -3}))
	waitFor(t, "g's actor is still active", func() bool { return !n.Active("g") })
	if !n.Remembered("g") {
		t.Fatal("g left memory with its actor")
	}
	if got, want := get(t, n, "g"), map[string]int64{"k": 1, "a": 7, "b": -3}; !cmp.Equal(got, want) {
		t.Errorf("g from its snapshot = %v, want %v", got, want)
	}
	waitFor(t, "g's actor is still active", func() bool { return !n.Active("g") })
	if again := change(t, n, "", "g", inc); !cmp.Equal(first, again, protocmp.Transform()) {
		t.Errorf("retry of r1 from a snapshot = %v, want the first reply %v", again, first)
	}
	if loads := e.journal.Loads("g"); loads != 1 {
		t.Errorf("g loaded %d times, want 1: reactivations from a snapshot read no journal", loads)
	}

	// Another node writes g while this node holds a snapshot of it.
	waitFor(t, "g's actor is still active", func() bool { return !n.Active("g") })
	rival := startNode(t, e.journal, e.clock, e.pub, nil)
	change(t, rival, "", "g", increase("k", 10))
	if v := change(t, n, "", "g", increase("k", 100)).GetValue(); v != 111 {
		t.Errorf("increase on a stale snapshot gives k = %d, want 111", v)
	}
	if loads := e.journal.Loads("g"); loads != 3 {
		t.Errorf("g loaded %d times, want 3 (this node, the rival, the reload after the conflict)", loads)
	}
}

// TestIdleGroupsLeaveMemory: past PassivateAfter a group's snapshot is
// dropped and its next call reads the journal.
func TestIdleGroupsLeaveMemory(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.ActorIdle, c.PassivateAfter = time.Millisecond, 20*time.Millisecond })
	n := e.node
	change(t, n, "", "g", increase("k", 4))
	waitFor(t, "g is still in memory", func() bool { return !n.Remembered("g") })
	if v := get(t, n, "g")["k"]; v != 4 {
		t.Errorf("k = %d after g left memory, want 4", v)
	}
	if loads := e.journal.Loads("g"); loads != 2 {
		t.Errorf("g loaded %d times, want 2", loads)
	}
}
