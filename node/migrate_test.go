package node_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestJournalOfEarlierVersionsIsKept writes a journal as earlier versions
// kept it, in the server's global account, and starts a node on it: the
// node moves it into its own account and serves the group.
func TestJournalOfEarlierVersionsIsKept(t *testing.T) {
	dir := t.TempDir()
	func() {
		s := journaltest.StartServerIn(t, dir)
		defer s.Shutdown()
		ctx := context.Background()
		j, err := journal.Open(ctx, journaltest.JetStream(t, journaltest.Connect(t, s)), journal.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		ev := &messages.Event{
			Changes: []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 41}}},
			State:   &messages.GroupState{Counters: map[string]int64{"k": 41}, Version: 1},
		}
		if _, err := j.Append(ctx, "old", 0, ev); err != nil {
			t.Fatal(err)
		}
	}()
	n := startNode(t, dir, nil)
	if got, want := counters(t, n.ClientURL(), "old"), map[string]int64{"k": 41}; !cmp.Equal(got, want) {
		t.Errorf("old = %v after the upgrade, want %v", got, want)
	}
	v, err := admin(t, n.ClientURL()).IncreaseGroupCounter(context.Background(), "old", "k", 1)
	if err != nil || v != 42 {
		t.Errorf("increase after the upgrade = %d, %v; want 42", v, err)
	}
}
