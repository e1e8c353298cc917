package audit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// chainWriter appends valid events of several groups to a journal, as a
// node would: each after the group's last, its state the one its changes
// give, its members link the group's latest members change.
type chainWriter struct {
	t      testing.TB
	j      *journal.Journal
	states map[string]*messages.GroupState
	last   map[string]uint64 // each group's last event
	linked map[string]uint64 // each group's latest members change
}

func (w *chainWriter) write(group string, c *messages.Change) {
	w.t.Helper()
	st := w.states[group]
	if st == nil {
		st = &messages.GroupState{Counters: map[string]int64{}}
	}
	c.Seq = st.GetVersion() + 1
	ev := &messages.Event{PrevSeq: w.last[group], MembersSeq: w.linked[group], UnixNano: time.Now().UnixNano(), Changes: []*messages.Change{c}}
	next := actors.CloneState(st)
	if err := actors.Apply(next, ev); err != nil {
		w.t.Fatal(err)
	}
	ev.State = next
	seq, err := w.j.Append(context.Background(), group, w.last[group], ev)
	if err != nil {
		w.t.Fatal(err)
	}
	w.states[group], w.last[group] = next, seq
	if c.GetOp() == messages.Op_OP_MEMBERS_ADD || c.GetOp() == messages.Op_OP_MEMBERS_REMOVE {
		w.linked[group] = seq
	}
}

// oneStreamJournal writes groups whose events interleave, half of them
// with members changes, to a new journal of one stream, with probes
// between them so that no group's events are consecutive.
func oneStreamJournal(t testing.TB, js jetstream.JetStream, groups int) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	w := &chainWriter{t: t, j: j, states: map[string]*messages.GroupState{}, last: map[string]uint64{}, linked: map[string]uint64{}}
	for round := range 7 {
		for i := range groups {
			g := fmt.Sprintf("g%d", i)
			user := fmt.Sprintf("u%d", i%3)
			switch {
			case round == 0:
				w.write(g, &messages.Change{Op: messages.Op_OP_SET, Counters: map[string]int64{"k": int64(i)}, User: user, RequestId: g + "-set"})
			case i%2 == 0 && round == 2:
				w.write(g, &messages.Change{Op: messages.Op_OP_MEMBERS_ADD, Members: []string{"ann", "bob"}, RequestId: g + "-add"})
			case i%2 == 0 && round == 4:
				w.write(g, &messages.Change{Op: messages.Op_OP_MEMBERS_REMOVE, Members: []string{"bob"}, RequestId: g + "-remove"})
			default:
				v := w.states[g].GetCounters()["k"]
				w.write(g, &messages.Change{Op: messages.Op_OP_INCREASE, Key: "k", Amount: int64(round), Value: v + int64(round), User: user, RequestId: fmt.Sprintf("%s-%d", g, round)})
			}
		}
		if err := j.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// events reads every group's events from j, each with its stream
// sequence.
func events(t testing.TB, j *journal.Journal) map[string][]*messages.Event {
	t.Helper()
	out := map[string][]*messages.Event{}
	err := j.Scan(context.Background(), "", 0, func(s journal.Stored) error {
		ev, err := s.Event()
		out[s.Group] = append(out[s.Group], ev)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unlinked is events without the stream sequences they name.
func unlinked(groups map[string][]*messages.Event) map[string][]*messages.Event {
	out := map[string][]*messages.Event{}
	for g, evs := range groups {
		for _, ev := range evs {
			ev = proto.Clone(ev).(*messages.Event)
			ev.PrevSeq, ev.MembersSeq = 0, 0
			out[g] = append(out[g], ev)
		}
	}
	return out
}

// checkResharded checks that j holds the events of want (read from the
// one stream) as a reshard copies them: each group's, in order, unchanged
// but for the sequences they name, which follow the journal's rule; the
// same history and last state.
func checkResharded(t *testing.T, j *journal.Journal, want map[string][]*messages.Event) {
	t.Helper()
	ctx := context.Background()
	got := events(t, j)
	if diff := cmp.Diff(unlinked(want), unlinked(got), protocmp.Transform()); diff != "" {
		t.Errorf("events after the reshard (-want +got):\n%s", diff)
	}
	r, err := Verify(ctx, j, "")
	if err != nil || len(r.Bad) > 0 || r.Groups != len(want) {
		t.Errorf("Verify after the reshard = %+v, %v; want %d groups, no bad event", r, err, len(want))
	}
	for g, evs := range want {
		ev, _, err := j.Last(ctx, g)
		if err != nil || !proto.Equal(ev.GetState(), evs[len(evs)-1].GetState()) {
			t.Errorf("Last(%s) = %v, %v; want state %v", g, ev.GetState(), err, evs[len(evs)-1].GetState())
		}
		var members int
		for _, e := range got[g] {
			if e.GetMembersSeq() != 0 {
				members++
			}
		}
		if g == "g0" && members == 0 {
			t.Errorf("%s's events name no members change: the test does not exercise MembersSeq", g)
		}
	}
}

// TestReshard reshards a journal of one stream to three shards, keeping
// the old stream: every group has its events, history and state in its
// shard, the sealed old stream takes no append, and a node opens the
// shards, not the old stream, whatever it asks for.
func TestReshard(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	ctx := context.Background()
	old := oneStreamJournal(t, js, 6)
	want := events(t, old)
	var histories = map[string][]Entry{}
	for g := range want {
		h, err := History(ctx, old, g, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		histories[g] = h
	}

	r, err := journal.BeginReshard(ctx, js, journal.DefaultConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := Reshard(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wantRep := (ReshardReport{Groups: 6, Events: 42, Copied: 42}); rep != wantRep {
		t.Errorf("Reshard() = %+v, want %+v", rep, wantRep)
	}
	if err := r.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}

	j, err := journal.Open(ctx, js, journal.DefaultConfig()) // asks for one shard
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if got := j.Layout().Shards; got != 3 {
		t.Fatalf("Open() after the reshard: %d shards, want 3", got)
	}
	checkResharded(t, j, want)
	ignoreStreamSeq := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".StreamSeq" }, cmp.Ignore())
	for g, h := range histories {
		got, err := History(ctx, j, g, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got, ignoreStreamSeq); diff != "" {
			t.Errorf("history of %s after the reshard (-want +got):\n%s", g, diff)
		}
	}

	// The old stream is kept, sealed: an append to it fails, and so does
	// an earlier version's node, which would make it take every group's
	// subject again.
	ev, seq, err := r.From.Last(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.From.Append(ctx, "g1", seq, ev); err == nil {
		t.Error("Append to the sealed old stream succeeded")
	}
	if _, err := js.Publish(ctx, "tally.journal.g1", nil); err == nil {
		t.Error("a publish to the old stream's subject succeeded")
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "TALLY_JOURNAL", Subjects: []string{"tally.journal.>", "tally.journal-probe"}}); err == nil {
		t.Error("the one stream's old settings were taken again")
	}
	if _, err := journal.BeginReshard(ctx, js, journal.DefaultConfig(), 3); !errors.Is(err, journal.ErrSharded) {
		t.Errorf("BeginReshard() of a journal of shards = %v, want ErrSharded", err)
	}

	// The tools read the kept stream as it was.
	kept, err := journal.BindKept(ctx, js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if r, err := Verify(ctx, kept, ""); err != nil || r.Groups != 6 || r.Events != 42 || len(r.Bad) > 0 {
		t.Errorf("Verify of the kept stream = %+v, %v; want 6 groups, 42 events, none bad", r, err)
	}
	if got := events(t, kept); !cmp.Equal(got, want, protocmp.Transform()) {
		t.Error("the kept stream's events are not those before the reshard")
	}
}

// TestReshardResumes stops a reshard halfway, at an acknowledgement or
// between an append and it: nodes do not open the journal meanwhile, and
// the reshard run again copies the rest, no event twice.
func TestReshardResumes(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	old := oneStreamJournal(t, js, 8)
	want := events(t, old)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := journal.BeginReshard(ctx, js, journal.DefaultConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	const stopAt = 25 // of 56 events
	_, err = Reshard(ctx, r, func(done int) {
		if done == stopAt {
			cancel()
		}
	})
	r.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Reshard() stopped = %v, want context.Canceled", err)
	}

	bg := context.Background()
	if _, err := journal.Open(bg, js, journal.DefaultConfig()); !errors.Is(err, journal.ErrMixedLayout) {
		t.Errorf("Open() during a reshard = %v, want ErrMixedLayout", err)
	}
	if _, err := journal.BeginReshard(bg, js, journal.DefaultConfig(), 4); !errors.Is(err, journal.ErrMixedLayout) {
		t.Errorf("BeginReshard() to 4 shards after one to 3 began = %v, want ErrMixedLayout", err)
	}

	r, err = journal.BeginReshard(bg, js, journal.DefaultConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before, err := r.To.GroupEvents(bg)
	if err != nil {
		t.Fatal(err)
	}
	var copied int
	for _, n := range before {
		copied += int(n)
	}
	if copied < stopAt || copied == 56 {
		t.Fatalf("the stopped reshard copied %d events, want %d to 55", copied, stopAt)
	}
	rep, err := Reshard(bg, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wantRep := (ReshardReport{Groups: 8, Events: 56, Copied: 56 - copied, Skipped: copied}); rep != wantRep {
		t.Errorf("Reshard() again = %+v, want %+v", rep, wantRep)
	}
	if err := r.Finish(bg, false); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Bind(bg, js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	checkResharded(t, j, want)
	if _, err := journal.BindKept(bg, js, journal.DefaultConfig()); !errors.Is(err, journal.ErrNoJournal) {
		t.Errorf("BindKept() after a reshard without keeping the old stream = %v, want ErrNoJournal", err)
	}
	if _, err := js.CreateStream(bg, jetstream.StreamConfig{Name: "TALLY_JOURNAL", Subjects: []string{"tally.journal.>", "tally.journal-probe"}}); err == nil {
		t.Error("a stream of the old layout was made next to the shards")
	}
}

// TestReshardRefuses: only a journal of one stream is resharded, to 2..64
// shards; a refused reshard leaves the stream as it was.
func TestReshardRefuses(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	ctx := context.Background()
	if _, err := journal.BeginReshard(ctx, js, journal.DefaultConfig(), 3); !errors.Is(err, journal.ErrNoJournal) {
		t.Errorf("BeginReshard() without a journal = %v, want ErrNoJournal", err)
	}
	sharded := journal.DefaultConfig()
	sharded.Shards = 2
	j, err := journal.Open(ctx, js, sharded)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := journal.BeginReshard(ctx, js, sharded, 3); !errors.Is(err, journal.ErrSharded) {
		t.Errorf("BeginReshard() of a journal of shards = %v, want ErrSharded", err)
	}
	one := journal.DefaultConfig()
	one.Stream, one.SubjectPrefix = "ONE", "one.journal"
	if j, err = journal.Open(ctx, js, one); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for _, n := range []int{-1, 0, 1, journal.MaxShards + 1} {
		if _, err := journal.BeginReshard(ctx, js, one, n); err == nil {
			t.Errorf("BeginReshard() to %d shards succeeded", n)
		}
	}
	if _, err := journal.BindKept(ctx, js, one); err == nil {
		t.Error("BindKept() of a journal's one stream, not sealed, succeeded")
	}
	// A bad event, which a sealed stream would keep for good.
	if _, err := js.Publish(ctx, "one.journal.g", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	if _, err := BeginReshard(ctx, js, one, 3); !errors.Is(err, ErrBadEvent) {
		t.Errorf("BeginReshard() of a journal with a bad event = %v, want ErrBadEvent", err)
	}
	if st, err := js.Stream(ctx, "ONE"); err != nil || st.CachedInfo().Config.Sealed {
		t.Errorf("the one stream after refused reshards: %v, sealed %v; want it unsealed", err, err == nil && st.CachedInfo().Config.Sealed)
	}
}
