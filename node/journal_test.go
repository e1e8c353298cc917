package node_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
	"github.com/tallyhq/tally/node"
)

// logBuffer collects a node's log for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDamagedEventIsNeverServed plants, through the node's own account, a
// last event that does not decode, one that does not follow the event
// before it, and one that follows it but that the service never writes (a
// key with NUL, as `tally-node journal verify` reports). The group then
// answers 10002 saying what is wrong, the log names the group and the
// stream sequence, and once the bad event is removed (as the README's
// repair does) the group loads again from its last good event.
func TestDamagedEventIsNeverServed(t *testing.T) {
	forge := func(t *testing.T, ev *messages.Event) []byte {
		t.Helper()
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, bad := range map[string]func(t *testing.T, prev uint64) []byte{
		"garbage": func(*testing.T, uint64) []byte { return []byte("\xff\xff garbage") },
		"does not follow": func(t *testing.T, _ uint64) []byte {
			return forge(t, &messages.Event{
				Changes: []*messages.Change{{Seq: 2, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 999_999_999}}},
				State:   &messages.GroupState{Counters: map[string]int64{"k": 999_999_999}, Version: 2},
			})
		},
		"outside the contract": func(t *testing.T, prev uint64) []byte {
			return forge(t, &messages.Event{
				PrevSeq:  prev,
				UnixNano: time.Now().UnixNano(),
				Changes:  []*messages.Change{{Seq: 2, Op: messages.Op_OP_SET, Counters: map[string]int64{"k\x00": 1}}},
				State:    &messages.GroupState{Counters: map[string]int64{"k": 7, "k\x00": 1}, Version: 2},
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			var log logBuffer
			n := startNode(t, t.TempDir(), func(c *node.Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
			url := n.ClientURL()
			ctx := context.Background()
			a := admin(t, url)
			if _, err := a.SetGroupCounters(ctx, "g", map[string]int64{"k": 7}); err != nil {
				t.Fatal(err)
			}
			js, stream := internalJournal(t, n)
			good, err := stream.GetLastMsgForSubject(ctx, "tally.journal.g")
			if err != nil {
				t.Fatal(err)
			}
			ack, err := js.Publish(ctx, "tally.journal.g", bad(t, good.Sequence))
			if err != nil {
				t.Fatal(err)
			}
			// The write conflicts with the planted event and reloads the group.
			for _, call := range []func() error{
				func() error { _, err := a.IncreaseGroupCounter(ctx, "g", "k", 1); return err },
				func() error { _, err := a.GetGroupCounters(ctx, "g"); return err },
			} {
				err := call()
				if err == nil || !strings.Contains(err.Error(), "10002") || !strings.Contains(err.Error(), "damaged") ||
					!strings.Contains(err.Error(), fmt.Sprintf("event %d", ack.Sequence)) {
					t.Errorf("call on the damaged group = %v, want 10002 naming event %d", err, ack.Sequence)
				}
			}
			if l := log.String(); !strings.Contains(l, "group=g") || !strings.Contains(l, fmt.Sprintf("event %d", ack.Sequence)) {
				t.Errorf("the log does not name group g and event %d:\n%s", ack.Sequence, l)
			}
			if err := stream.DeleteMsg(ctx, ack.Sequence); err != nil {
				t.Fatal(err)
			}
			var got map[string]int64
			// The failed actor stops by itself; the next call loads afresh.
			journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				got, err = a.GetGroupCounters(ctx, "g")
				return err
			})
			if got["k"] != 7 {
				t.Errorf("after the repair k = %d, want 7", got["k"])
			}
			if v, err := a.IncreaseGroupCounter(ctx, "g", "k", 1); err != nil || v != 8 {
				t.Errorf("increase after the repair = %d, %v; want 8", v, err)
			}
		})
	}
}

// TestDamagedEarlierEvent plants a damaged event and then a good one after
// it: the group is not served (its last event cannot be checked against
// the one before), the error names the damaged one, and once that is
// removed the group loads from its last event.
func TestDamagedEarlierEvent(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	ctx := context.Background()
	a := admin(t, n.ClientURL())
	if _, err := a.SetGroupCounters(ctx, "g", map[string]int64{"k": 7}); err != nil {
		t.Fatal(err)
	}
	js, stream := internalJournal(t, n)
	bad, err := js.Publish(ctx, "tally.journal.g", []byte("\xff\xff garbage"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(&messages.Event{
		PrevSeq: bad.Sequence,
		Changes: []*messages.Change{{Seq: 3, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 9}}},
		State:   &messages.GroupState{Counters: map[string]int64{"k": 9}, Version: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "tally.journal.g", good); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IncreaseGroupCounter(ctx, "g", "k", 1); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("event %d", bad.Sequence)) {
		t.Errorf("increase on the group = %v, want 10002 naming event %d", err, bad.Sequence)
	}
	if err := stream.DeleteMsg(ctx, bad.Sequence); err != nil {
		t.Fatal(err)
	}
	var v int64
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		v, err = a.IncreaseGroupCounter(ctx, "g", "k", 1)
		return err
	})
	if v != 10 {
		t.Errorf("increase after the repair = %d, want 10 (from the last event's 9)", v)
	}
}

// TestOtherWritersReachGroupsInMemory writes a group, reads it so that it
// is in memory, and has another writer store events on its subject
// through the node's own account, with no call to the node meanwhile: a
// good event is served at once by the next gets, and a damaged one is
// never served, not even from memory.
func TestOtherWritersReachGroupsInMemory(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	ctx := context.Background()
	a := admin(t, n.ClientURL())
	if _, err := a.SetGroupCounters(ctx, "g", map[string]int64{"k": 7}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetGroupCounters(ctx, "g"); err != nil || got["k"] != 7 {
		t.Fatalf("get = %v, %v", got, err)
	}
	js, stream := internalJournal(t, n)
	last, err := stream.GetLastMsgForSubject(ctx, "tally.journal.g")
	if err != nil {
		t.Fatal(err)
	}
	good, err := proto.Marshal(&messages.Event{
		PrevSeq: last.Sequence,
		Changes: []*messages.Change{{Seq: 2, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 42}}},
		State:   &messages.GroupState{Counters: map[string]int64{"k": 42}, Version: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "tally.journal.g", good); err != nil {
		t.Fatal(err)
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got, err := a.GetGroupCounters(ctx, "g")
		if err != nil || got["k"] != 42 {
			return fmt.Errorf("get after another writer's event = %v, %v; want k 42", got, err)
		}
		return nil
	})
	// A group read while it had no event, then given its first.
	if got, err := a.GetGroupCounters(ctx, "fresh"); err != nil || len(got) != 0 {
		t.Fatalf("get of a group never written = %v, %v", got, err)
	}
	first, err := proto.Marshal(&messages.Event{
		Changes: []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 5}, RequestId: "imported"}},
		State:   &messages.GroupState{Counters: map[string]int64{"k": 5}, Version: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "tally.journal.fresh", first); err != nil {
		t.Fatal(err)
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got, err := a.GetGroupCounters(ctx, "fresh")
		if err != nil || got["k"] != 5 {
			return fmt.Errorf("get after another writer's first event = %v, %v; want k 5", got, err)
		}
		return nil
	})
	bad, err := js.Publish(ctx, "tally.journal.g", []byte("\xff\xff garbage"))
	if err != nil {
		t.Fatal(err)
	}
	journaltest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		_, err := a.GetGroupCounters(ctx, "g")
		if err == nil || !strings.Contains(err.Error(), "10002") || !strings.Contains(err.Error(), fmt.Sprintf("event %d", bad.Sequence)) {
			return fmt.Errorf("get after a damaged event = %v, want 10002 naming event %d", err, bad.Sequence)
		}
		return nil
	})
}
