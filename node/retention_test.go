package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/node"
)

// TestRetention runs a node whose journal keeps 15 events per group, with
// a dedupe window of 3 s, and writes 25 changes with request IDs to one
// group and one to another. The journal then holds 15 events of the busy
// group; a restart has both groups' state, a replay of the trimmed journal
// gives the same, and the last writes retried after the restart, within
// the window, change nothing.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *node.Config) { c.JournalKeep, c.DedupeWindow = 15, 3*time.Second }
	n := startNode(t, dir, cfg)
	ctx := context.Background()
	a := admin(t, n.ClientURL())
	if _, err := a.IncreaseGroupCounter(ctx, "quiet", "k", 7); err != nil {
		t.Fatal(err)
	}
	const writes = 25
	for i := range writes {
		if _, err := a.IncreaseGroupCounter(ctx, "busy", "k", 1, client.WithRequestID(fmt.Sprintf("r%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	js, stream := internalJournal(t, n)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("tally.journal.>"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects["tally.journal.busy"]; got != 15 {
		t.Errorf("the journal keeps %d events of busy, want 15", got)
	}
	// busy appended at most 15 events per window: the 15 kept span nearly
	// all of it (14 gaps of 200 ms), so no event of the window was dropped.
	first, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject("tally.journal.busy"))
	if err != nil {
		t.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, "tally.journal.busy")
	if err != nil {
		t.Fatal(err)
	}
	if span := last.Time.Sub(first.Time); span < 14*150*time.Millisecond {
		t.Errorf("the kept events span %v: busy appended faster than 15 per window", span)
	}
	j, err := journal.Open(ctx, js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	states, err := actors.Rebuild(ctx, j)
	if err != nil {
		t.Fatalf("Rebuild of the trimmed journal: %v", err)
	}
	if got := states["busy"].GetCounters()["k"]; got != writes {
		t.Errorf("replay of the trimmed journal: busy k = %d, want %d", got, writes)
	}
	stopNode(t, n)

	n = startNode(t, dir, cfg)
	a = admin(t, n.ClientURL())
	for i := writes - 3; i < writes; i++ {
		if v, err := a.IncreaseGroupCounter(ctx, "busy", "k", 1, client.WithRequestID(fmt.Sprintf("r%d", i))); err != nil || v != int64(i+1) {
			t.Errorf("retry of r%d after the restart = %d, %v; want its first reply, %d", i, v, err, i+1)
		}
	}
	if got := counters(t, n.ClientURL(), "busy")["k"]; got != writes {
		t.Errorf("after the restart busy k = %d, want %d", got, writes)
	}
	if got := counters(t, n.ClientURL(), "quiet")["k"]; got != 7 {
		t.Errorf("after the restart quiet k = %d, want 7", got)
	}
}
