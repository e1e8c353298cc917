package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// BenchmarkDraftDecide is a group's work per increase: copy the committed
// state into the spare draft, decide the command on it, and make the draft
// the committed state once the event is acknowledged.
func BenchmarkDraftDecide(b *testing.B) {
	g := &group{state: newState()}
	for i := range 5 {
		g.state.Counters[fmt.Sprintf("key%d", i)] = int64(i)
	}
	cmd := &messages.Change{Op: messages.Op_OP_INCREASE, Key: "key1", Amount: 1}
	b.ReportAllocs()
	for b.Loop() {
		next := g.draft()
		if _, err := decide(next, &membership.Set{}, cmd); err != nil {
			b.Fatal(err)
		}
		g.spare, g.state = g.state, next
	}
}

func BenchmarkLimiterAdmit(b *testing.B) {
	w := newWindow(20)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		now += int64(time.Second) // 1 call a second: always admitted
		if !w.admit(now, 5*time.Second) {
			b.Fatal("refused")
		}
	}
}

func TestWindowSlides(t *testing.T) {
	w := newWindow(3)
	span := 10 * time.Second
	for i, tc := range []struct {
		at   int64
		want bool
	}{
		{0, true}, {1, true}, {2, true}, // full
		{3, false},               // refused: not recorded
		{int64(span) - 1, false}, // the call at 0 is still inside
		{int64(span), true},      // the call at 0 slid out
		{int64(span) + 1, true},  // the call at 1 slid out
		{int64(span) + 2, true},  // the call at 2 slid out
		{int64(span) + 3, false}, // three calls within span again
	} {
		if got := w.admit(tc.at, span); got != tc.want {
			t.Errorf("step %d: admit(%d) = %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

// BenchmarkMemberCheck is what a members-only group adds to a user's
// call: the check of the user against 100,000 members.
func BenchmarkMemberCheck(b *testing.B) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%06d", i)
	}
	g := &group{id: "g", state: &messages.GroupState{MembersOnly: true}, members: membership.New(ids)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := g.allowed(ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}
