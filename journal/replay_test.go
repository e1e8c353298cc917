package journal_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestReadsOfTheWholeJournalSkipProbes: a replay and a scan of the whole
// journal read its stream unfiltered (a filter of the groups' subjects,
// on a stream that also holds the probe's, has the server walk a block's
// subjects for each message: a replay of 100,000 events over 10,000
// groups ran 12 times slower), and deliver every event, no probe, up to
// the journal's last event even when a probe follows it.
func TestReadsOfTheWholeJournalSkipProbes(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := journal.DefaultConfig()
	j, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	other, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(prev uint64, v int64) *messages.Event {
		return &messages.Event{PrevSeq: prev, Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_INCREASE, Key: "k", Amount: 1, Value: v}},
			State: &messages.GroupState{Counters: map[string]int64{"k": v}, Version: uint64(v)}}
	}
	// Probes before, between and after the events: j's first is deleted
	// by its last, other's stays.
	if err := j.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	g1, err := j.Append(ctx, "g", 0, ev(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	h1, err := j.Append(ctx, "h", 0, ev(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := j.Append(ctx, "g", g1, ev(g1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, j.Layout().StreamOf(0))
	if err != nil {
		t.Fatal(err)
	}
	// unfiltered checks, while a read delivers, that no consumer of the
	// stream filters the journal's subjects.
	journalWide := j.Subject("") + ">"
	unfiltered := func(read string) {
		t.Helper()
		consumers := stream.ListConsumers(ctx)
		for c := range consumers.Info() {
			if c.Config.FilterSubject == journalWide || slices.Contains(c.Config.FilterSubjects, journalWide) {
				t.Errorf("%s: consumer %s filters %q %v", read, c.Name, c.Config.FilterSubject, c.Config.FilterSubjects)
			}
		}
		if err := consumers.Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{fmt.Sprint("g ", g1), fmt.Sprint("h ", h1), fmt.Sprint("g ", g2)}
	var got []string
	err = j.Replay(ctx, func(group string, seq uint64, _ *messages.Event) error {
		if len(got) == 0 {
			unfiltered("Replay")
		}
		got = append(got, fmt.Sprint(group, " ", seq))
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Replay: %v %v, want %v", err, got, want)
	}
	got = nil
	err = j.ReplaySince(ctx, time.Now().Add(-time.Hour), func(group string, seq uint64, _ *messages.Event) error {
		got = append(got, fmt.Sprint(group, " ", seq))
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ReplaySince: %v %v, want %v", err, got, want)
	}
	got = nil
	err = j.Scan(ctx, "", 0, func(s journal.Stored) error {
		if len(got) == 0 {
			unfiltered("Scan")
		}
		got = append(got, fmt.Sprint(s.Group, " ", s.Seq))
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Scan: %v %v, want %v", err, got, want)
	}
	got = nil
	if err := j.Scan(ctx, "", h1, func(s journal.Stored) error { got = append(got, fmt.Sprint(s.Group, " ", s.Seq)); return nil }); err != nil || !slices.Equal(got, want[1:]) {
		t.Errorf("Scan from %d: %v %v, want %v", h1, err, got, want[1:])
	}
}

// BenchmarkReplay replays 100,000 events over 10,000 groups, with a probe
// in the stream as a node's journal has.
func BenchmarkReplay(b *testing.B) {
	const events, groups = 100_000, 10_000
	nc := journaltest.Connect(b, journaltest.StartServerIn(b, b.TempDir()))
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, js, journal.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := j.Probe(ctx); err != nil {
		b.Fatal(err)
	}
	data, err := proto.Marshal(&messages.Event{Changes: []*messages.Change{{Seq: 1, Op: messages.Op_OP_INCREASE, Key: "n", Amount: 1, Value: 1}},
		State: &messages.GroupState{Counters: map[string]int64{"n": 1}, Version: 1}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range events {
		if _, err := js.PublishAsync(j.Subject(fmt.Sprintf("r%d", i%groups)), data); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	for b.Loop() {
		n := 0
		if err := j.Replay(ctx, func(string, uint64, *messages.Event) error { n++; return nil }); err != nil || n != events {
			b.Fatalf("Replay: %v, %d events, want %d", err, n, events)
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}
