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

// BenchmarkRebuild replays a journal of 100,000 increases over 1,000
// groups of five counters from a file-backed stream on an embedded server,
// checking each event as recovery does; events/s is the replay rate.
func BenchmarkRebuild(b *testing.B) {
	const events, groups = 100_000, 1_000
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
	last := make([]uint64, groups)
	states := make([]*messages.GroupState, groups)
	for g := range states {
		states[g] = &messages.GroupState{Counters: map[string]int64{"likes": 0, "online": 0, "unread": 0, "gifts": 0, "shares": 0}}
	}
	keys := []string{"likes", "online", "unread", "gifts", "shares"}
	for i := range events {
		g, st := i%groups, states[i%groups]
		key := keys[i/groups%len(keys)]
		st.Version++
		st.Counters[key]++
		ev := &messages.Event{
			PrevSeq: last[g],
			Changes: []*messages.Change{{Seq: st.Version, Op: messages.Op_OP_INCREASE, Key: key, Amount: 1, Value: st.Counters[key]}},
			State:   st,
		}
		if i < groups { // a group's first event sets all five keys
			ev.Changes = []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{key: 1, "online": 0, "unread": 0, "gifts": 0, "shares": 0}}}
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(j.Subject(fmt.Sprintf("g%d", g)), data); err != nil {
			b.Fatal(err)
		}
		last[g] = uint64(i + 1)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("writing the journal timed out")
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := actors.Rebuild(ctx, j)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != groups || got["g0"].GetVersion() != events/groups {
			b.Fatalf("rebuilt %d groups, g0 at version %d", len(got), got["g0"].GetVersion())
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}
