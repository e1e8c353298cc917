package actors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

const benchEvents, benchGroups = 100_000, 1_000

// BenchmarkRebuild replays a journal of 100,000 increases over 1,000
// groups of five counters from a file-backed stream on an embedded server,
// checking each event as recovery does; events/s is the replay rate.
func BenchmarkRebuild(b *testing.B) {
	nc := journaltest.Connect(b, journaltest.StartServer(b))
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, js, journal.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	// One publisher on an empty stream: event i gets stream sequence i+1.
	for i, ev := range benchJournal(b) {
		data, err := proto.Marshal(ev.ev)
		if err != nil {
			b.Fatal(err)
		}
		if ev.seq != uint64(i+1) {
			b.Fatalf("event %d at stream sequence %d", i, ev.seq)
		}
		// A loaded machine acknowledges slowly: wait for room rather than
		// fail after the default 200 ms.
		if _, err := js.PublishAsync(j.Subject(ev.group), data, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("writing the journal timed out")
	}
	benchRebuild(b, j)
}

// BenchmarkRebuildDecoded replays the same events from memory, already
// decoded: what Rebuild itself costs, the checks of every event, without
// the journal's reads.
func BenchmarkRebuildDecoded(b *testing.B) {
	benchRebuild(b, memReplayer(benchJournal(b)))
}

func benchRebuild(b *testing.B, r actors.Replayer) {
	b.ReportAllocs()
	for b.Loop() {
		got, err := actors.Rebuild(context.Background(), r)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != benchGroups || got["g0"].GetVersion() != benchEvents/benchGroups {
			b.Fatalf("rebuilt %d groups, g0 at version %d", len(got), got["g0"].GetVersion())
		}
	}
	b.ReportMetric(float64(benchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}

// storedEvent is an event of a journal and where it is stored.
type storedEvent struct {
	group string
	seq   uint64
	ev    *messages.Event
}

// memReplayer replays a journal held in memory.
type memReplayer []storedEvent

func (m memReplayer) Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error {
	for _, e := range m {
		if err := fn(e.group, e.seq, e.ev); err != nil {
			return err
		}
	}
	return nil
}

// benchJournal returns the benchmarks' journal: 100,000 increases over
// 1,000 groups of five counters, event i at stream sequence i+1, each
// group's first event a set of all five keys.
func benchJournal(tb testing.TB) []storedEvent {
	tb.Helper()
	out := make([]storedEvent, 0, benchEvents)
	last := make([]uint64, benchGroups)
	states := make([]*messages.GroupState, benchGroups)
	for g := range states {
		states[g] = &messages.GroupState{Counters: map[string]int64{"likes": 0, "online": 0, "unread": 0, "gifts": 0, "shares": 0}}
	}
	keys := []string{"likes", "online", "unread", "gifts", "shares"}
	for i := range benchEvents {
		g, st := i%benchGroups, states[i%benchGroups]
		key := keys[i/benchGroups%len(keys)]
		st.Version++
		st.Counters[key]++
		ev := &messages.Event{
			PrevSeq: last[g],
			Changes: []*messages.Change{{Seq: st.Version, Op: messages.Op_OP_INCREASE, Key: key, Amount: 1, Value: st.Counters[key]}},
			State:   actors.CloneState(st),
		}
		if i < benchGroups { // a group's first event sets all five keys
			ev.Changes = []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{key: 1, "online": 0, "unread": 0, "gifts": 0, "shares": 0}}}
		}
		out = append(out, storedEvent{group: fmt.Sprintf("g%d", g), seq: uint64(i + 1), ev: ev})
		last[g] = uint64(i + 1)
	}
	return out
}
