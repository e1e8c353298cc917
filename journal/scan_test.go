package journal_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// TestScanAndRemove: Bind opens an existing journal and refuses a missing
// one; Scan delivers each stored message, the undecodable too, with its
// group and time; Remove takes a group's event away and refuses another
// group's; and a replay or a scan whose stream's last message was removed
// still ends.
func TestScanAndRemove(t *testing.T) {
	nc := journaltest.Connect(t, journaltest.StartServer(t))
	js := journaltest.JetStream(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := journal.DefaultConfig()
	if _, err := journal.Bind(ctx, js, cfg); !errors.Is(err, journal.ErrNoJournal) {
		t.Fatalf("Bind of a missing journal: %v, want ErrNoJournal", err)
	}
	j, err := journal.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(prev uint64, v int64) *messages.Event {
		return &messages.Event{PrevSeq: prev, Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_INCREASE, Key: "k", Amount: 1, Value: v}},
			State: &messages.GroupState{Counters: map[string]int64{"k": v}, Version: uint64(v)}}
	}
	s1, err := j.Append(ctx, "g", 0, ev(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, "h", 0, ev(0, 1)); err != nil {
		t.Fatal(err)
	}
	bad, err := js.Publish(ctx, j.Subject("g"), []byte("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := journal.Bind(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	var undecodable []uint64
	err = b.Scan(ctx, "", 0, func(s journal.Stored) error {
		groups = append(groups, s.Group)
		if s.Time.IsZero() {
			t.Errorf("message %d has no time", s.Seq)
		}
		if _, err := s.Event(); err != nil {
			undecodable = append(undecodable, s.Seq)
		}
		return nil
	})
	if err != nil || len(groups) != 3 || groups[0] != "g" || groups[1] != "h" || groups[2] != "g" || len(undecodable) != 1 || undecodable[0] != bad.Sequence {
		t.Fatalf("Scan: %v, groups %v, undecodable %v; want g h g and %d", err, groups, undecodable, bad.Sequence)
	}
	if err := b.Remove(ctx, "h", bad.Sequence); err == nil {
		t.Error("Remove took g's event as h's")
	}
	if err := b.Remove(ctx, "g", bad.Sequence); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	if err := b.Scan(ctx, "g", 0, func(s journal.Stored) error { seqs = append(seqs, s.Seq); return nil }); err != nil || len(seqs) != 1 || seqs[0] != s1 {
		t.Errorf("Scan of g after Remove: %v %v, want [%d]", err, seqs, s1)
	}
	// The stream's last sequence is the removed message: both still end.
	events := 0
	if err := b.Replay(ctx, func(string, uint64, *messages.Event) error { events++; return nil }); err != nil || events != 2 {
		t.Errorf("Replay after Remove: %v, %d events, want 2", err, events)
	}
	seqs = nil
	if err := b.Scan(ctx, "", 0, func(s journal.Stored) error { seqs = append(seqs, s.Seq); return nil }); err != nil || len(seqs) != 2 {
		t.Errorf("Scan after Remove: %v %v, want 2 messages", err, seqs)
	}
}

// TestScanLongGroup reads a group of more events than Scan gets one by
// one: the consumer goes on from the first event the gets left, and a
// scan from a later sequence starts there.
func TestScanLongGroup(t *testing.T) {
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := journal.Open(ctx, js, journal.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	var last uint64
	for v := int64(1); v <= 300; v++ {
		ev := &messages.Event{PrevSeq: last, Changes: []*messages.Change{{Seq: uint64(v), Op: messages.Op_OP_INCREASE, Key: "k", Amount: 1, Value: v}},
			State: &messages.GroupState{Counters: map[string]int64{"k": v}, Version: uint64(v)}}
		if last, err = j.Append(ctx, "long", last, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, last)
		if _, err := j.Append(ctx, fmt.Sprintf("other%d", v), 0, ev); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	if err := j.Scan(ctx, "long", 0, func(s journal.Stored) error { got = append(got, s.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan of 300 events gave %d: %v...", len(got), got[:min(len(got), 5)])
	}
	got = nil
	if err := j.Scan(ctx, "long", want[200], func(s journal.Stored) error { got = append(got, s.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want[200:]) {
		t.Errorf("Scan from %d gave %d events, want %d", want[200], len(got), len(want[200:]))
	}
}
