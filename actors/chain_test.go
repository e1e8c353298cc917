package actors_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/messages"
)

func setChange(seq uint64, counters map[string]int64) *messages.Change {
	return &messages.Change{Seq: seq, Op: messages.Op_OP_SET, Counters: counters}
}

func increaseChange(seq uint64, key string, amount, value int64) *messages.Change {
	return &messages.Change{Seq: seq, Op: messages.Op_OP_INCREASE, Key: key, Amount: amount, Value: value}
}

// storedAt is an event at stream sequence seq that names prev as its
// predecessor and carries counters at its last change's version.
func storedAt(seq, prev uint64, counters map[string]int64, changes ...*messages.Change) storedEvent {
	return storedEvent{seq: seq, ev: &messages.Event{
		PrevSeq: prev,
		Changes: changes,
		State:   &messages.GroupState{Counters: counters, Version: changes[len(changes)-1].GetSeq()},
	}}
}

// TestChain follows a group's events with the journal's rule: the first
// bad one is refused with the reason the audit tools report, and breaks
// the chain.
func TestChain(t *testing.T) {
	first := storedAt(1, 0, map[string]int64{"k": 1}, setChange(1, map[string]int64{"k": 1}))
	for _, tt := range []struct {
		name   string
		group  string
		after  *storedEvent // where the chain starts; nil: before the group's first event
		events []storedEvent
		bad    int // the index of the first refused event; -1: none
		reason string
		want   *messages.GroupState // the state after the last event followed
	}{{
		name:   "a group's events",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 3}, increaseChange(2, "k", 2, 3))},
		bad:    -1,
		want:   &messages.GroupState{Counters: map[string]int64{"k": 3}, Version: 2},
	}, {
		name:   "a first event whose predecessor is not kept is trusted",
		events: []storedEvent{storedAt(7, 3, map[string]int64{"k": 5, "j": 1}, increaseChange(4, "k", 1, 5))},
		bad:    -1,
		want:   &messages.GroupState{Counters: map[string]int64{"k": 5, "j": 1}, Version: 4},
	}, {
		name:   "the wrong predecessor",
		events: []storedEvent{first, storedAt(3, 2, map[string]int64{"k": 3}, increaseChange(2, "k", 2, 3))},
		bad:    1,
		reason: "names 2 as its predecessor, the group's previous event is 1",
	}, {
		name:   "a state its changes do not give",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 4}, increaseChange(2, "k", 2, 3))},
		bad:    1,
		reason: "carries a state its changes do not give",
	}, {
		name:   "changes that do not apply",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 3}, increaseChange(3, "k", 2, 3))},
		bad:    1,
		reason: "its changes do not apply: change 3 after version 1: event does not follow from the state before it",
	}, {
		name:   "a change with a NUL key",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 1, "k\x00": 2}, setChange(2, map[string]int64{"k\x00": 2}))},
		bad:    1,
		reason: `change 2: invalid parameter: key "k\x00" has a control character`,
	}, {
		// The contract's reason comes first, as the checks run in that order.
		name:   "a NUL key in a state its changes do not give",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 2, "k\x00": 0}, increaseChange(2, "k", 1, 2))},
		bad:    1,
		reason: `its state: invalid parameter: key "k\x00" has a control character`,
	}, {
		name:   "a NUL key in a trusted first event",
		events: []storedEvent{storedAt(7, 3, map[string]int64{"k": 5, "k\x00": 1}, increaseChange(4, "k", 1, 5))},
		bad:    0,
		reason: `its state: invalid parameter: key "k\x00" has a control character`,
	}, {
		name:   "a NUL key kept from the state the chain starts at",
		after:  &storedEvent{seq: 4, ev: &messages.Event{State: &messages.GroupState{Counters: map[string]int64{"k": 1, "k\x00": 1}, Version: 1}}},
		events: []storedEvent{storedAt(5, 4, map[string]int64{"k": 2, "k\x00": 1}, increaseChange(2, "k", 1, 2))},
		bad:    0,
		reason: `its state: invalid parameter: key "k\x00" has a control character`,
	}, {
		name:   "a group ID outside the contract",
		group:  strings.Repeat("g", 49),
		events: []storedEvent{first},
		bad:    0,
		reason: `invalid group ID: group ID "` + strings.Repeat("g", 49) + `" must be 1..48 bytes of printable ASCII without . * > or spaces`,
	}, {
		name:   "an event that follows a bad one",
		events: []storedEvent{first, storedAt(3, 1, map[string]int64{"k": 4}, increaseChange(2, "k", 2, 3)), storedAt(4, 3, map[string]int64{"k": 4}, increaseChange(3, "k", 1, 4))},
		bad:    1,
		reason: "carries a state its changes do not give",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			group := tt.group
			if group == "" {
				group = "g"
			}
			ch := actors.NewChain(group)
			if tt.after != nil {
				ch = actors.NewChainAfter(group, tt.after.seq, tt.after.ev.GetState())
			}
			for i, e := range tt.events {
				err := ch.Follow(e.seq, e.ev, nil)
				if i < tt.bad || tt.bad < 0 {
					if err != nil {
						t.Fatalf("Follow(%d) = %v, want nil", e.seq, err)
					}
					continue
				}
				want := tt.reason
				if i > tt.bad {
					want = fmt.Sprintf("follows bad event %d", tt.events[tt.bad].seq)
				}
				var bad *actors.BadEventError
				if !errors.As(err, &bad) || !errors.Is(err, actors.ErrCorruptEvent) || bad.Reason != want {
					t.Errorf("Follow(%d) = %v, want a BadEventError wrapping ErrCorruptEvent: %s", e.seq, err, want)
				}
			}
			if tt.bad >= 0 {
				return
			}
			if diff := cmp.Diff(ch.State(), tt.want, protocmp.Transform()); diff != "" {
				t.Errorf("State() (-got +want):\n%s", diff)
			}
		})
	}
}

// TestChainEach: each sees every change with the states before and after
// it, and an error of each is returned as it is and leaves the chain
// where it was.
func TestChainEach(t *testing.T) {
	ch := actors.NewChain("g")
	if err := ch.Follow(1, storedAt(1, 0, map[string]int64{"k": 1}, setChange(1, map[string]int64{"k": 1})).ev, nil); err != nil {
		t.Fatal(err)
	}
	next := storedAt(2, 1, map[string]int64{"k": 3, "j": 5}, increaseChange(2, "k", 2, 3), setChange(3, map[string]int64{"j": 5}))
	stop := errors.New("stop")
	if err := ch.Follow(2, next.ev, func(*messages.Change, *messages.GroupState, *messages.GroupState) error { return stop }); err != stop {
		t.Fatalf("Follow with each failing = %v, want %v", err, stop)
	}
	type seen struct {
		Op            string
		Before, After map[string]int64
	}
	var got []seen
	err := ch.Follow(2, next.ev, func(c *messages.Change, before, after *messages.GroupState) error {
		got = append(got, seen{actors.OpName(c.GetOp()), maps.Clone(before.GetCounters()), maps.Clone(after.GetCounters())})
		return nil
	})
	if err != nil {
		t.Fatalf("Follow after each failed = %v", err)
	}
	want := []seen{
		{"increase", map[string]int64{"k": 1}, map[string]int64{"k": 3}},
		{"set", map[string]int64{"k": 3}, map[string]int64{"k": 3, "j": 5}},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("changes seen (-got +want):\n%s", diff)
	}
}

// TestRebuildRefusesAnEventOutsideTheContract: replay checks what the
// audit tools check, an event with a NUL key included.
func TestRebuildRefusesAnEventOutsideTheContract(t *testing.T) {
	first := storedAt(1, 0, map[string]int64{"k": 1}, setChange(1, map[string]int64{"k": 1}))
	nul := storedAt(2, 1, map[string]int64{"k": 1, "k\x00": 2}, setChange(2, map[string]int64{"k\x00": 2}))
	first.group, nul.group = "g", "g"
	_, err := actors.Rebuild(context.Background(), memReplayer{first, nul})
	if !errors.Is(err, actors.ErrCorruptEvent) || !strings.Contains(err.Error(), "group g: event 2: change 2:") {
		t.Errorf("Rebuild = %v, want ErrCorruptEvent for group g's event 2", err)
	}
}
