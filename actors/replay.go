package actors

import (
	"context"
	"fmt"

	"github.com/tallyhq/tally/messages"
)

// Replayer reads the whole journal in commit order.
type Replayer interface {
	Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error
}

// Rebuild replays the journal and returns every group's state, built with
// Apply exactly as the group actors build it. It checks that each event
// follows the one before it and that its stored state is what applying its
// changes gives. A group whose first stored event follows one the journal
// no longer keeps (its per-group limit dropped it) starts from that
// event's state.
func Rebuild(ctx context.Context, r Replayer) (map[string]*messages.GroupState, error) {
	states := map[string]*messages.GroupState{}
	last := map[string]uint64{}
	err := r.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		st, ok := states[group]
		if !ok && ev.GetPrevSeq() != 0 {
			states[group], last[group] = CloneState(ev.GetState()), seq
			return nil
		}
		if !ok {
			st = newState()
			states[group] = st
		}
		if ev.GetPrevSeq() != last[group] {
			return fmt.Errorf("group %s: event %d follows %d but names %d: %w", group, seq, last[group], ev.GetPrevSeq(), ErrCorruptEvent)
		}
		if err := Apply(st, ev); err != nil {
			return fmt.Errorf("group %s: event %d: %w", group, seq, err)
		}
		if !SameState(st, ev.GetState()) {
			return fmt.Errorf("group %s: event %d stores a state its changes do not give: %w", group, seq, ErrCorruptEvent)
		}
		last[group] = seq
		return nil
	})
	if err != nil {
		return nil, err
	}
	return states, nil
}

// SameState reports whether two states have the same version and
// counters; proto.Equal does the same by reflection, several times
// slower, and replay compares every event.
func SameState(a, b *messages.GroupState) bool {
	if a.GetVersion() != b.GetVersion() || len(a.GetCounters()) != len(b.GetCounters()) {
		return false
	}
	for k, v := range a.GetCounters() {
		if w, ok := b.GetCounters()[k]; !ok || w != v {
			return false
		}
	}
	return true
}
