package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

// panickyJournal panics in the first append, inside the group's actor.
type panickyJournal struct {
	*countingJournal
	panicked atomic.Bool
}

func (p *panickyJournal) AppendAsync(group string, expected uint64, ev *messages.Event, done func(uint64, error)) {
	if p.panicked.CompareAndSwap(false, true) {
		panic("append exploded")
	}
	p.countingJournal.AppendAsync(group, expected, ev, done)
}

// TestPanicAnswersAndRecovers: a group actor that panics answers the
// commands it holds with ErrUnavailable at once, and the next command
// activates a fresh actor from the journal.
func TestPanicAnswersAndRecovers(t *testing.T) {
	e := newEnv(t, nil)
	j := &panickyJournal{countingJournal: e.journal}
	n := startNode(t, j, e.clock, e.pub, nil)
	change(t, e.node, "", "g", increase("k", 1)) // through the other node: stored

	_, err := n.Change(context.Background(), "", "g", increase("k", 1))
	if !errors.Is(err, actors.ErrUnavailable) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("command held by a panicking actor = %v, want ErrUnavailable (stopped)", err)
	}
	if got := change(t, n, "", "g", increase("k", 10)); got.GetValue() != 11 {
		t.Errorf("after the panic k = %d, want 11 (the panicked command was never appended)", got.GetValue())
	}
	if loads := j.Loads("g"); loads != 3 {
		t.Errorf("loads of g = %d, want 3 (first node, the panicked actor, its successor)", loads)
	}
}
