package journaltest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// Opener returns an empty journal for one subtest.
type Opener func(tb testing.TB) *journal.Journal

// Run is the suite every journal configuration must pass: fenced appends,
// last-event reads, reads by sequence and replay in commit order.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, j *journal.Journal)
	}{
		{"LastOfUnknownGroup", testLastOfUnknownGroup},
		{"AppendThenLast", testAppendThenLast},
		{"StaleAppendConflicts", testStaleAppendConflicts},
		{"FirstAppendOnWrittenGroupConflicts", testFirstAppendConflicts},
		{"AtReadsBySequence", testAt},
		{"ReplayInCommitOrder", testReplayOrder},
		{"ReplayEmpty", testReplayEmpty},
		{"ReplayGroupSince", testReplayGroup},
		{"RacingWritersNeverShareAPredecessor", testRacingWriters},
		{"AsyncAppendIsFenced", testAsyncAppend},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// testReplayGroup replays one group's events among another's, from a time
// before them to its last.
func testReplayGroup(t *testing.T, j *journal.Journal) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	since := time.Now().Add(-time.Second)
	var want []uint64
	var prevA, prevB uint64
	for i := range 300 {
		seq, err := j.Append(ctx, "a", prevA, event(prevA, uint64(i+1), map[string]int64{"k": int64(i)}))
		if err != nil {
			t.Fatal(err)
		}
		want, prevA = append(want, seq), seq
		if prevB, err = j.Append(ctx, "b", prevB, event(prevB, uint64(i+1), map[string]int64{"k": int64(i)})); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	err := j.ReplayGroup(ctx, "a", since, prevA, func(seq uint64, ev *messages.Event) error {
		got = append(got, seq)
		return nil
	})
	if err != nil {
		t.Fatalf("ReplayGroup(a) = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReplayGroup(a) sequences (-want +got):\n%s", diff)
	}
}

func event(prev uint64, version uint64, counters map[string]int64) *messages.Event {
	return &messages.Event{
		PrevSeq: prev,
		Changes: []*messages.Change{{Seq: version, Op: messages.Op_OP_SET, Counters: counters}},
		State:   &messages.GroupState{Counters: counters, Version: version},
	}
}

func testLastOfUnknownGroup(t *testing.T, j *journal.Journal) {
	ev, seq, err := j.Last(context.Background(), "nobody")
	if ev != nil || seq != 0 || err != nil {
		t.Errorf("Last(nobody) = %v, %d, %v; want nil, 0, nil", ev, seq, err)
	}
}

func testAppendThenLast(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	first := event(0, 1, map[string]int64{"k": 1})
	seq1, err := j.Append(ctx, "g1", 0, first)
	if err != nil {
		t.Fatalf("Append(g1, 0) = %v", err)
	}
	second := event(seq1, 2, map[string]int64{"k": 2})
	seq2, err := j.Append(ctx, "g1", seq1, second)
	if err != nil {
		t.Fatalf("Append(g1, %d) = %v", seq1, err)
	}
	if seq2 <= seq1 {
		t.Errorf("second sequence %d not after first %d", seq2, seq1)
	}
	got, seq, err := j.Last(ctx, "g1")
	if err != nil {
		t.Fatalf("Last(g1) = %v", err)
	}
	if seq != seq2 {
		t.Errorf("Last(g1) sequence = %d, want %d", seq, seq2)
	}
	if diff := cmp.Diff(second, got, protocmp.Transform()); diff != "" {
		t.Errorf("Last(g1) event mismatch (-want +got):\n%s", diff)
	}
}

func testStaleAppendConflicts(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	seq1, err := j.Append(ctx, "g1", 0, event(0, 1, map[string]int64{"k": 1}))
	if err != nil {
		t.Fatal(err)
	}
	seq2, err := j.Append(ctx, "g1", seq1, event(seq1, 2, map[string]int64{"k": 2}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.Append(ctx, "g1", seq1, event(seq1, 2, map[string]int64{"k": 99}))
	if !errors.Is(err, journal.ErrConflict) {
		t.Fatalf("stale Append = %v, want ErrConflict", err)
	}
	got, seq, err := j.Last(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if seq != seq2 || got.GetState().GetCounters()["k"] != 2 {
		t.Errorf("after a refused append, Last = seq %d, k=%d; want seq %d, k=2", seq, got.GetState().GetCounters()["k"], seq2)
	}
}

func testFirstAppendConflicts(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	if _, err := j.Append(ctx, "g1", 0, event(0, 1, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, "g1", 0, event(0, 1, nil)); !errors.Is(err, journal.ErrConflict) {
		t.Errorf("Append(g1, 0) on a written group = %v, want ErrConflict", err)
	}
	// Another group's subject is not fenced by g1's.
	if _, err := j.Append(ctx, "g2", 0, event(0, 1, nil)); err != nil {
		t.Errorf("Append(g2, 0) = %v", err)
	}
}

func testAt(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	want := event(0, 1, map[string]int64{"a": 7})
	seq, err := j.Append(ctx, "g1", 0, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.At(ctx, "g1", seq)
	if err != nil {
		t.Fatalf("At(g1, %d) = %v", seq, err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("At(g1, %d) mismatch (-want +got):\n%s", seq, diff)
	}
	// Another group of g1's stream: in a journal of several shards, only
	// those share g1's sequences.
	other := "g2"
	for i := 3; j.Layout().ShardOf(other) != j.Layout().ShardOf("g1"); i++ {
		other = fmt.Sprintf("g%d", i)
	}
	if _, err := j.At(ctx, other, seq); !errors.Is(err, journal.ErrCorrupt) {
		t.Errorf("At(%s, %d) of g1's event = %v, want ErrCorrupt", other, seq, err)
	}
}

type stored struct {
	group string
	seq   uint64
	value int64
}

// testReplayOrder: a replay delivers every event, each group's in commit
// order (a journal of several shards orders only the groups of one
// stream).
func testReplayOrder(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	last := map[string]uint64{}
	want := map[string][]stored{}
	for i := range 30 {
		g := fmt.Sprintf("g%d", i%4)
		seq, err := j.Append(ctx, g, last[g], event(last[g], uint64(i), map[string]int64{"i": int64(i)}))
		if err != nil {
			t.Fatal(err)
		}
		last[g] = seq
		want[g] = append(want[g], stored{g, seq, int64(i)})
	}
	got := map[string][]stored{}
	err := j.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		got[group] = append(got[group], stored{group, seq, ev.GetState().GetCounters()["i"]})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay = %v", err)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(stored{})); diff != "" {
		t.Errorf("Replay order mismatch (-want +got):\n%s", diff)
	}
}

func testReplayEmpty(t *testing.T, j *journal.Journal) {
	calls := 0
	err := j.Replay(context.Background(), func(string, uint64, *messages.Event) error {
		calls++
		return nil
	})
	if err != nil || calls != 0 {
		t.Errorf("Replay of an empty journal = %v after %d calls, want nil after 0", err, calls)
	}
}

// testRacingWriters lets writers race read-modify-write appends on one group:
// every accepted event must name the sequence of the event before it.
func testRacingWriters(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	const writers, appends = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for range writers {
		wg.Go(func() {
			for done := 0; done < appends; {
				ev, seq, err := j.Last(ctx, "hot")
				if err != nil {
					t.Error(err)
					return
				}
				n := ev.GetState().GetCounters()["n"] + 1
				_, err = j.Append(ctx, "hot", seq, event(seq, uint64(n), map[string]int64{"n": n}))
				switch {
				case errors.Is(err, journal.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
				case err != nil:
					t.Error(err)
					return
				default:
					done++
				}
			}
		})
	}
	wg.Wait()
	prev := uint64(0)
	count := int64(0)
	err := j.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		count++
		if ev.PrevSeq != prev {
			return fmt.Errorf("event %d follows %d but names %d", seq, prev, ev.PrevSeq)
		}
		if n := ev.GetState().GetCounters()["n"]; n != count {
			return fmt.Errorf("event %d has n=%d, want %d", seq, n, count)
		}
		prev = seq
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != writers*appends {
		t.Errorf("journal holds %d events, want %d", count, writers*appends)
	}
	t.Logf("%d conflicts among %d writers", conflicts, writers)
}

// AppendAsync runs j.AppendAsync and waits for its outcome.
func AppendAsync(j *journal.Journal, group string, expected uint64, ev *messages.Event) (uint64, error) {
	type outcome struct {
		seq uint64
		err error
	}
	ch := make(chan outcome, 1)
	j.AppendAsync(group, expected, ev, func(seq uint64, err error) { ch <- outcome{seq, err} })
	o := <-ch
	return o.seq, o.err
}

func testAsyncAppend(t *testing.T, j *journal.Journal) {
	ctx := context.Background()
	seq1, err := AppendAsync(j, "g1", 0, event(0, 1, map[string]int64{"k": 1}))
	if err != nil || seq1 == 0 {
		t.Fatalf("AppendAsync(g1, 0) = %d, %v", seq1, err)
	}
	if _, err := AppendAsync(j, "g1", 0, event(0, 1, map[string]int64{"k": 9})); !errors.Is(err, journal.ErrConflict) {
		t.Errorf("stale AppendAsync = %v, want ErrConflict", err)
	}
	want := event(seq1, 2, map[string]int64{"k": 2})
	seq2, err := AppendAsync(j, "g1", seq1, want)
	if err != nil {
		t.Fatalf("AppendAsync(g1, %d) = %v", seq1, err)
	}
	got, seq, err := j.Last(ctx, "g1")
	if err != nil || seq != seq2 {
		t.Fatalf("Last(g1) = seq %d, %v; want %d", seq, err, seq2)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Last(g1) after AppendAsync (-want +got):\n%s", diff)
	}
	// Many appends in flight at once, one per group, all acknowledged with
	// their own sequences.
	// Sequences are a stream's: distinct within each shard.
	const n = 200
	type where struct {
		shard int
		seq   uint64
	}
	seqs := make(chan where, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		group := fmt.Sprintf("many%d", i)
		j.AppendAsync(group, 0, event(0, 1, nil), func(seq uint64, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("AppendAsync = %v", err)
			}
			seqs <- where{j.Layout().ShardOf(group), seq}
		})
	}
	wg.Wait()
	close(seqs)
	distinct := map[where]bool{}
	for s := range seqs {
		distinct[s] = true
	}
	if len(distinct) != n {
		t.Errorf("%d distinct sequences for %d appends", len(distinct), n)
	}
}
