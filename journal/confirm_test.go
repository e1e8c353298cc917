package journal_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestConfirm confirms a group's last event only at its sequence, 0 for
// a group without events, and keeps one probe of the journal's in the
// stream however often it confirms.
func TestConfirm(t *testing.T) {
	ctx := context.Background()
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	cfg := journal.DefaultConfig()
	cfg.Shards = 3
	j := opener(js, cfg)(t)
	ev := func(prev uint64, v int64) *messages.Event {
		return &messages.Event{PrevSeq: prev, Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_SET, Counters: map[string]int64{"k": v}}},
			State: &messages.GroupState{Counters: map[string]int64{"k": v}, Version: uint64(v)}}
	}
	if err := j.Confirm(ctx, "g", 0); err != nil {
		t.Fatalf("Confirm(g, 0) of a group without events = %v", err)
	}
	g1, err := j.Append(ctx, "g", 0, ev(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	g2, err := j.Append(ctx, "g", g1, ev(g1, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, g1, g2 + 1} {
		if err := j.Confirm(ctx, "g", seq); !errors.Is(err, journal.ErrConflict) {
			t.Errorf("Confirm(g, %d) with the last event at %d = %v, want ErrConflict", seq, g2, err)
		}
	}
	for range 3 {
		if err := j.Confirm(ctx, "g", g2); err != nil {
			t.Fatalf("Confirm(g, %d) = %v", g2, err)
		}
	}
	// The group's events are as they were, and the next append follows.
	if _, last, err := j.Last(ctx, "g"); err != nil || last != g2 {
		t.Errorf("Last(g) = %d, %v; want %d", last, err, g2)
	}
	if _, err := j.Append(ctx, "g", g2, ev(g2, 3)); err != nil {
		t.Errorf("Append(g, %d) after confirmations = %v", g2, err)
	}
	stream, err := js.Stream(ctx, j.Layout().StreamOf(j.Layout().ShardOf("g")))
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	probes := 0
	for subject, n := range info.State.Subjects {
		if subject != j.Subject("g") {
			probes += int(n)
		}
	}
	if probes != 1 {
		t.Errorf("the stream holds %d probes after 4 confirmations, want 1: %v", probes, info.State.Subjects)
	}
}

// BenchmarkLoadRead measures what a group's load reads from a replicated
// journal (three servers, R3): its last event, and the same confirmed
// through a write, as a node of a cluster loads a group.
func BenchmarkLoadRead(b *testing.B) {
	ctx := context.Background()
	servers := journaltest.StartCluster(b, 3)
	js := journaltest.JetStream(b, journaltest.Connect(b, servers[0]))
	cfg := journal.DefaultConfig()
	cfg.Replicas = 3
	j := opener(js, cfg)(b)
	ev := &messages.Event{Changes: []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: map[string]int64{"k": 1}}},
		State: &messages.GroupState{Counters: map[string]int64{"k": 1}, Version: 1}}
	seq, err := j.Append(ctx, "g", 0, ev)
	if err != nil {
		b.Fatal(err)
	}
	for _, confirm := range []bool{false, true} {
		name := "last"
		if confirm {
			name = "last+confirm"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, at, err := j.Last(ctx, "g"); err != nil || at != seq {
					b.Fatalf("Last = %d, %v; want %d", at, err, seq)
				}
				if confirm {
					if err := j.Confirm(ctx, "g", seq); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
