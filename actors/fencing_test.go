package actors_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// TestFencing lets a second writer append to group "contested" behind the
// group actor's back, as another node would during a split brain. Their
// events must never interleave: the stale actor reloads and retries, and
// the final value is the sum of the acknowledged increments of both.
// (Two protoactor systems cannot share one test process: its remote sets
// gRPC's global logger racily. cmd/node's tests run two node processes.)
func TestFencing(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	var acked, actorAcked, gaveUp atomic.Int64
	var rivalDone atomic.Bool
	// The actor's callers write until the rival is done and the actor has
	// run into the rival's appends at least once (a reload after a
	// conflict), so that the two interleave however they are scheduled.
	contested := func() bool { return !rivalDone.Load() || e.journal.Loads("contested") < 2 }
	const maxWrites = 100_000
	var writes atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for contested() && writes.Add(1) <= maxWrites {
				_, err := e.node.Change(ctx, "", "contested", increase("n", 1))
				switch {
				case errors.Is(err, actors.ErrUnavailable):
					// Lost to the rival too often in a row: refused,
					// stored nowhere.
					gaveUp.Add(1)
				case err != nil:
					t.Errorf("increase = %v", err)
				default:
					acked.Add(1)
					actorAcked.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		defer rivalDone.Store(true)
		for done := 0; done < 100; {
			err := rivalIncrease(ctx, e.journal.Journal, "contested")
			switch {
			case errors.Is(err, journal.ErrConflict):
			case err != nil:
				t.Errorf("rival append = %v", err)
				return
			default:
				done++
				acked.Add(1)
			}
		}
	})
	wg.Wait()

	// Rebuild fails if an event does not name its predecessor or its
	// changes do not follow from the state before it.
	states, err := actors.Rebuild(ctx, e.journal)
	if err != nil {
		t.Fatalf("Rebuild = %v", err)
	}
	st := states["contested"]
	if got, want := st.GetCounters()["n"], acked.Load(); got != want {
		t.Errorf("journal says n = %d, want %d acknowledged increments", got, want)
	}
	if got, want := st.GetVersion(), uint64(acked.Load()); got != want {
		t.Errorf("journal holds %d changes, want %d", got, want)
	}
	t.Logf("actor: %d acknowledged, %d gave up after repeated conflicts", actorAcked.Load(), gaveUp.Load())
	if actorAcked.Load() == 0 {
		t.Errorf("the actor never got a write through")
	}
	if loads := e.journal.Loads("contested"); loads < 2 {
		t.Errorf("group loaded %d times in %d writes: the actor never conflicted, the test proves nothing", loads, maxWrites)
	}
	// The stale actor answers its next write from the journal's state.
	c := change(t, e.node, "", "contested", increase("n", 0))
	if c.GetValue() != acked.Load() {
		t.Errorf("n = %d after a write, want %d", c.GetValue(), acked.Load())
	}
}

// rivalIncrease is another writer's increase of n by 1: read the last
// event, append the next one fenced on it.
func rivalIncrease(ctx context.Context, j *journal.Journal, group string) error {
	ev, seq, err := j.Last(ctx, group)
	if err != nil {
		return err
	}
	st := ev.GetState()
	n := st.GetCounters()["n"] + 1
	counters := map[string]int64{}
	for k, v := range st.GetCounters() {
		counters[k] = v
	}
	counters["n"] = n
	next := &messages.Event{
		PrevSeq: seq,
		Changes: []*messages.Change{{Seq: st.GetVersion() + 1, Op: messages.Op_OP_INCREASE, Key: "n", Amount: 1, Value: n}},
		State:   &messages.GroupState{Counters: counters, Version: st.GetVersion() + 1},
	}
	_, err = j.Append(ctx, group, seq, next)
	return err
}
