package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// deposedJournal answers reads of a group's last event as a stream leader
// cut off from the other replicas does until it notices: from what it had
// (the event at old), while the leader the others elected meanwhile
// stored more. Writes, Confirm's among them, reach the real leader.
type deposedJournal struct {
	*journal.Journal
	old   uint64
	stale atomic.Int64 // reads left to answer from old
}

func (d *deposedJournal) Last(ctx context.Context, group string) (*messages.Event, uint64, error) {
	if d.stale.Add(-1) >= 0 {
		ev, err := d.Journal.At(ctx, group, d.old)
		return ev, d.old, err
	}
	return d.Journal.Last(ctx, group)
}

// leasedNode starts a node of a cluster on j, whose every partition it
// has held for an hour (heldLeases), with loads bounded by timeout.
func leasedNode(t *testing.T, j actors.Journal, timeout time.Duration) *actors.Node {
	t.Helper()
	return startNode(t, j, actorstest.NewFakeClock(), &recorder{}, func(c *actors.Config) {
		c.Leases = heldLeases{}
		c.Timeout = timeout
	})
}

// heldLeases says that the node has held every partition for an hour,
// under one lease.
type heldLeases struct{}

func (heldLeases) Partition(string) int { return 0 }

func (heldLeases) Lease(int) (uint64, int64, bool) {
	return 7, time.Now().Add(-time.Hour).UnixNano(), true
}

// TestLoadConfirmsTheLastEvent loads a group in a cluster from a journal
// whose first reads come from a deposed stream leader, one event behind:
// the group serves the value of the last event, never the old one, and
// while no read can be confirmed it serves nothing. (A node cut off from
// its cluster, whose server led the group's stream, took the group's
// partition back as the cut healed, before its server noticed that the
// others had elected another leader, and served cut-7 = 1 after another
// node had acknowledged 2.)
func TestLoadConfirmsTheLastEvent(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t))))
	d := &deposedJournal{Journal: j}
	n := leasedNode(t, d, 2*time.Second)
	for _, g := range []string{"behind", "cut-off"} {
		if err := rivalIncrease(ctx, j, g); err != nil {
			t.Fatal(err)
		}
	}
	_, d.old, _ = j.Last(ctx, "behind")
	if err := rivalIncrease(ctx, j, "behind"); err != nil {
		t.Fatal(err)
	}
	// The deposed leader answers the first three reads, then steps down.
	d.stale.Store(3)
	got, err := n.Get(ctx, "", &messages.GetRequest{GroupId: "behind"})
	if err != nil {
		t.Fatalf("get behind = %v", err)
	}
	if v := got.GetCounters()["n"]; v != 2 {
		t.Errorf("behind: n = %d after the journal acknowledged 2 (the deposed leader's read was served)", v)
	}
	if left := d.stale.Load(); left > 0 {
		t.Errorf("the load read the last event %d times fewer than the deposed leader answered", left)
	}

	// A leader that stays deposed for longer than a load: no value.
	_, d.old, _ = j.Last(ctx, "cut-off")
	if err := rivalIncrease(ctx, j, "cut-off"); err != nil {
		t.Fatal(err)
	}
	d.stale.Store(1 << 40)
	got, err = n.Get(ctx, "", &messages.GetRequest{GroupId: "cut-off"})
	if !errors.Is(err, actors.ErrUnavailable) {
		t.Errorf("get cut-off while every read is old = %v, %v; want ErrUnavailable", got.GetCounters(), err)
	}
}

// lostProbes loses the first probes of Confirm as a stream electing its
// leader does: no answer ever comes, and only the caller's deadline ends
// the wait.
type lostProbes struct {
	*journal.Journal
	lost atomic.Int64 // probes left to lose
}

func (l *lostProbes) Confirm(ctx context.Context, group string, seq uint64) error {
	if l.lost.Add(-1) >= 0 {
		<-ctx.Done()
		return fmt.Errorf("confirm %s: %w", group, ctx.Err())
	}
	return l.Journal.Confirm(ctx, group, seq)
}

// TestLoadSendsALostProbeAgain loads a group whose first two probes are
// never answered: the load sends the probe again and serves the group
// within its timeout. (A new cluster's first loads waited for a lost probe
// until the load's timeout and answered 10002.)
func TestLoadSendsALostProbeAgain(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t))))
	l := &lostProbes{Journal: j}
	n := leasedNode(t, l, 3*time.Second)
	if err := rivalIncrease(ctx, j, "room"); err != nil {
		t.Fatal(err)
	}
	l.lost.Store(2)
	got, err := n.Get(ctx, "", &messages.GetRequest{GroupId: "room"})
	if err != nil {
		t.Fatalf("get room after two lost probes = %v", err)
	}
	if v := got.GetCounters()["n"]; v != 1 {
		t.Errorf("room: n = %d, want 1", v)
	}
	if left := l.lost.Load(); left >= 0 {
		t.Errorf("%d probes left to lose: the load did not send one again", left+1)
	}
}
