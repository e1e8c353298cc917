package actors

import (
	"context"
	"fmt"

	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// Replayer reads the whole journal in commit order.
type Replayer interface {
	Replay(ctx context.Context, fn func(group string, seq uint64, ev *messages.Event) error) error
}

// Rebuild replays the journal and returns every group's state, built with
// Apply exactly as the group actors build it, each event checked with the
// journal's rule (see Chain).
func Rebuild(ctx context.Context, r Replayer) (map[string]*messages.GroupState, error) {
	states, _, err := RebuildMembers(ctx, r)
	return states, err
}

// RebuildMembers is Rebuild that also returns every group's members (nil
// for a group whose first event the journal no longer keeps).
func RebuildMembers(ctx context.Context, r Replayer) (map[string]*messages.GroupState, map[string]*membership.Set, error) {
	chains := map[string]*Chain{}
	err := r.Replay(ctx, func(group string, seq uint64, ev *messages.Event) error {
		ch, ok := chains[group]
		if !ok {
			ch = NewChain(group)
			chains[group] = ch
		}
		if err := ch.Follow(seq, ev, nil); err != nil {
			return fmt.Errorf("group %s: event %d: %w", group, seq, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	states := make(map[string]*messages.GroupState, len(chains))
	members := make(map[string]*membership.Set, len(chains))
	for group, ch := range chains {
		states[group], members[group] = ch.State(), ch.Members()
	}
	return states, members, nil
}

// SameState reports whether two states have the same version and
// counters; proto.Equal does the same by reflection, several times
// slower, and replay compares every event.
func SameState(a, b *messages.GroupState) bool {
	if a.GetVersion() != b.GetVersion() || len(a.GetCounters()) != len(b.GetCounters()) ||
		a.GetMembersOnly() != b.GetMembersOnly() || a.GetMemberCount() != b.GetMemberCount() ||
		a.GetMembersDigest() != b.GetMembersDigest() {
		return false
	}
	for k, v := range a.GetCounters() {
		if w, ok := b.GetCounters()[k]; !ok || w != v {
			return false
		}
	}
	return true
}
