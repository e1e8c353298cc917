package journal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tallyhq/tally/actors/actorstest"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

// guard bounds the waits for what the sweeper does after the clock moved,
// so that a test fails rather than hangs; nothing is timed by it.
const guard = 10 * time.Second

// unacknowledged opens a journal on clock with its stream gone and a plain
// subscriber on its subjects in its place: appends reach the subscriber,
// which counts each send, and are never acknowledged.
func unacknowledged(t *testing.T, cfg journal.Config) (*journal.Journal, chan *nats.Msg) {
	t.Helper()
	nc := journaltest.Connect(t, journaltest.StartServer(t))
	js := journaltest.JetStream(t, nc)
	j := opener(js, cfg)(t)
	if err := js.DeleteStream(context.Background(), j.Layout().StreamOf(0)); err != nil {
		t.Fatal(err)
	}
	sends := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(j.Subject(">"), sends)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return j, sends
}

func firstEvent() *messages.Event {
	counters := map[string]int64{"k": 1}
	return &messages.Event{
		Changes: []*messages.Change{{Seq: 1, Op: messages.Op_OP_SET, Counters: counters}},
		State:   &messages.GroupState{Counters: counters, Version: 1},
	}
}

func appendAsync(j *journal.Journal) chan error {
	done := make(chan error, 1)
	j.AppendAsync("g", 0, firstEvent(), func(_ uint64, err error) { done <- err })
	return done
}

// awaitSend waits for the next send of the append, and fails the test if
// the append is answered first.
func awaitSend(t *testing.T, sends chan *nats.Msg, done chan error, what string) {
	t.Helper()
	select {
	case <-sends:
	case err := <-done:
		t.Fatalf("%s: the append was answered (%v), want it sent again", what, err)
	case <-time.After(guard):
		t.Fatalf("%s: the append was not sent again", what)
	}
}

// awaitTimeout waits for the append to fail with ErrTimeout, passing over
// its sends.
func awaitTimeout(t *testing.T, sends chan *nats.Msg, done chan error, what string) {
	t.Helper()
	for {
		select {
		case <-sends:
		case err := <-done:
			if !errors.Is(err, journal.ErrTimeout) {
				t.Fatalf("%s: append = %v, want ErrTimeout", what, err)
			}
			return
		case <-time.After(guard):
			t.Fatalf("%s: the append did not time out", what)
		}
	}
}

// TestAppendDeadlinesIgnoreWallClockSteps sets the wall clock forward an
// hour and back two while an append awaits an acknowledgement that never
// comes: it is resent every Resend and times out after AckTimeout of time
// passed, neither at once (the step forward) nor an hour late (the step
// back).
func TestAppendDeadlinesIgnoreWallClockSteps(t *testing.T) {
	clock := actorstest.NewFakeClock()
	cfg := journal.DefaultConfig()
	// An hour and a minute: only the fake clock's time can make them due
	// within the test's guard, not time passing in the real world.
	cfg.Clock, cfg.AckTimeout, cfg.Resend = clock, time.Hour, time.Minute
	j, sends := unacknowledged(t, cfg)
	done := appendAsync(j)
	awaitSend(t, sends, done, "first send")

	clock.SetWall(time.Hour)
	clock.Advance(cfg.Resend)
	// A resend is sent only before the deadline: the append is still due.
	awaitSend(t, sends, done, "a resend period after the wall clock was set forward an hour")

	clock.SetWall(-2 * time.Hour)
	clock.Advance(cfg.Resend)
	awaitSend(t, sends, done, "a resend period after the wall clock was set back two hours")

	clock.Advance(cfg.AckTimeout - 2*cfg.Resend)
	awaitTimeout(t, sends, done, "AckTimeout after the append")
}

// TestAppendDeadlineAfterWallClockSetBack sets the wall clock back an
// hour while an append without resends awaits its acknowledgement: it
// times out once AckTimeout has passed, not an hour later.
func TestAppendDeadlineAfterWallClockSetBack(t *testing.T) {
	clock := actorstest.NewFakeClock()
	cfg := journal.DefaultConfig()
	cfg.Clock, cfg.AckTimeout = clock, time.Hour // due only by the fake clock
	j, sends := unacknowledged(t, cfg)
	done := appendAsync(j)
	awaitSend(t, sends, done, "first send")
	clock.SetWall(-time.Hour)
	clock.Advance(cfg.AckTimeout)
	awaitTimeout(t, sends, done, "AckTimeout after the append, the wall clock set back an hour")
}

// TestSinceStoredIgnoresWallClockSteps checks that how long ago the
// journal took a write follows the time passed, whatever the wall clock
// does.
func TestSinceStoredIgnoresWallClockSteps(t *testing.T) {
	clock := actorstest.NewFakeClock()
	cfg := journal.DefaultConfig()
	cfg.Clock = clock
	js := journaltest.JetStream(t, journaltest.Connect(t, journaltest.StartServer(t)))
	j := opener(js, cfg)(t)
	if _, ok := j.SinceStored(); ok {
		t.Fatal("SinceStored before any write reports one")
	}
	if err := j.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	for _, step := range []time.Duration{-time.Hour, 2 * time.Hour} {
		clock.SetWall(step)
		if since, ok := j.SinceStored(); !ok || since != 2*time.Second {
			t.Errorf("SinceStored 2 s after a probe, the wall clock stepped %v = %v, %v; want 2s, true", step, since, ok)
		}
	}
	if _, err := journaltest.AppendAsync(j, "g", 0, firstEvent()); err != nil {
		t.Fatal(err)
	}
	if since, ok := j.SinceStored(); !ok || since != 0 {
		t.Errorf("SinceStored right after an append = %v, %v; want 0, true", since, ok)
	}
}
