package actors

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// ErrCorruptEvent means an event breaks the journal's rule (see Chain): it
// does not follow from the state before it (a gap in the change sequence,
// a value that is not old+amount, a 21st key), or it is not one the
// service writes (a key outside the contract).
var ErrCorruptEvent = errors.New("event does not follow from the state before it")

// newState returns the state of a group that has no events.
func newState() *messages.GroupState {
	return &messages.GroupState{Counters: map[string]int64{}}
}

// CloneState returns a copy of st that shares nothing with it.
func CloneState(st *messages.GroupState) *messages.GroupState {
	c := maps.Clone(st.GetCounters())
	if c == nil {
		c = map[string]int64{}
	}
	return &messages.GroupState{Counters: c, Version: st.GetVersion(),
		MembersOnly: st.GetMembersOnly(), MemberCount: st.GetMemberCount(), MembersDigest: st.GetMembersDigest()}
}

// Apply applies the changes of ev to st, in order. It is deterministic and
// does no I/O: the live path runs it after the journal acknowledged ev, and
// replay runs it on every stored event, so both reach the same state.
func Apply(st *messages.GroupState, ev *messages.Event) error {
	for _, c := range ev.GetChanges() {
		if err := applyChange(st, c); err != nil {
			return err
		}
	}
	return nil
}

func applyChange(st *messages.GroupState, c *messages.Change) error {
	if c.GetSeq() != st.Version+1 {
		return fmt.Errorf("change %d after version %d: %w", c.GetSeq(), st.Version, ErrCorruptEvent)
	}
	if st.Counters == nil {
		st.Counters = map[string]int64{}
	}
	switch c.GetOp() {
	case messages.Op_OP_SET:
		maps.Copy(st.Counters, c.GetCounters())
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		v, ok := step(st.Counters[c.GetKey()], c.GetOp(), c.GetAmount())
		if !ok || v != c.GetValue() {
			return fmt.Errorf("change %d: %s %d on %q gives %d, event says %d: %w",
				c.GetSeq(), c.GetOp(), c.GetAmount(), c.GetKey(), v, c.GetValue(), ErrCorruptEvent)
		}
		st.Counters[c.GetKey()] = v
	case messages.Op_OP_DELETE:
		for _, k := range c.GetKeys() {
			delete(st.Counters, k)
		}
	case messages.Op_OP_MEMBERS_ADD:
		st.MembersOnly = true
		st.MemberCount += uint64(len(c.GetMembers()))
		st.MembersDigest += membership.DigestOf(c.GetMembers())
	case messages.Op_OP_MEMBERS_REMOVE:
		if n := uint64(len(c.GetMembers())); n > st.MemberCount {
			return fmt.Errorf("change %d removes %d members of %d: %w", c.GetSeq(), n, st.MemberCount, ErrCorruptEvent)
		}
		st.MemberCount -= uint64(len(c.GetMembers()))
		st.MembersDigest -= membership.DigestOf(c.GetMembers())
	default:
		return fmt.Errorf("change %d: unknown operation %v: %w", c.GetSeq(), c.GetOp(), ErrCorruptEvent)
	}
	if len(st.Counters) > MaxKeys {
		return fmt.Errorf("change %d leaves %d keys: %w", c.GetSeq(), len(st.Counters), ErrCorruptEvent)
	}
	st.Version = c.GetSeq()
	return nil
}

// step adds or subtracts amount (never negative) and reports false when the
// result would leave int64.
func step(old int64, op messages.Op, amount int64) (int64, bool) {
	if op == messages.Op_OP_DECREASE {
		if old < math.MinInt64+amount {
			return 0, false
		}
		return old - amount, true
	}
	if old > math.MaxInt64-amount {
		return 0, false
	}
	return old + amount, true
}

// applyMembers applies a members change to the group's member set; other
// changes leave it alone. The change's members were checked against the
// set (decide, or Chain).
func applyMembers(set *membership.Set, c *messages.Change) {
	switch c.GetOp() {
	case messages.Op_OP_MEMBERS_ADD:
		set.Add(c.GetMembers())
	case messages.Op_OP_MEMBERS_REMOVE:
		set.Remove(c.GetMembers())
	}
}

// isMembers reports whether op changes a group's members.
func isMembers(op messages.Op) bool {
	return op == messages.Op_OP_MEMBERS_ADD || op == messages.Op_OP_MEMBERS_REMOVE
}

// memberChanges lists the users a members command changes, sorted: those
// of the request that are not members of set (add) or are (remove).
func memberChanges(set *membership.Set, cmd *messages.Change) []string {
	add := cmd.GetOp() == messages.Op_OP_MEMBERS_ADD
	var out []string
	for _, u := range cmd.GetMembers() {
		if set.Has(u) != add {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// decide turns a validated command into the change it makes to st, and
// applies that change to st. A nil change and nil error means the command
// changes nothing (a delete of absent keys, an add of members only). A
// refused command leaves st as it was. set is the group's members, which
// a members command is decided against: it is never in an append with
// other commands, so set is the members before it.
func decide(st *messages.GroupState, set *membership.Set, cmd *messages.Change) (*messages.Change, error) {
	c := &messages.Change{Seq: st.Version + 1, Op: cmd.GetOp(), RequestId: cmd.GetRequestId(), User: cmd.GetUser()}
	switch cmd.GetOp() {
	case messages.Op_OP_SET:
		added := 0
		for k := range cmd.GetCounters() {
			if _, ok := st.Counters[k]; !ok {
				added++
			}
		}
		if n := len(st.Counters) + added; n > MaxKeys {
			return nil, fmt.Errorf("%w: set would leave the group with %d keys, at most %d", ErrInvalidParameter, n, MaxKeys)
		}
		c.Counters = cmd.GetCounters()
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		old, ok := st.Counters[cmd.GetKey()]
		if !ok && len(st.Counters) >= MaxKeys {
			return nil, fmt.Errorf("%w: key %q would be one key more than the %d a group may have", ErrInvalidParameter, cmd.GetKey(), MaxKeys)
		}
		v, ok := step(old, cmd.GetOp(), cmd.GetAmount())
		if !ok {
			return nil, fmt.Errorf("%w: %s %d on %q (now %d) leaves int64", ErrInvalidParameter, verb(cmd.GetOp()), cmd.GetAmount(), cmd.GetKey(), old)
		}
		c.Key, c.Amount, c.Value = cmd.GetKey(), cmd.GetAmount(), v
	case messages.Op_OP_DELETE:
		c.Keys = deletedKeys(st, cmd.GetKeys())
		if len(c.Keys) == 0 {
			return nil, nil
		}
		if cmd.GetRequestId() != "" {
			c.RequestHash = fingerprint(cmd)
		}
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		c.Members = memberChanges(set, cmd)
		if len(c.Members) == 0 {
			return nil, nil
		}
		if cmd.GetRequestId() != "" {
			c.RequestHash = fingerprint(cmd)
		}
	}
	if err := applyChange(st, c); err != nil {
		return nil, err
	}
	return c, nil
}

// deletedKeys lists the keys a delete of want (all when empty) removes from
// st, sorted and without repeats.
func deletedKeys(st *messages.GroupState, want []string) []string {
	var keys []string
	if len(want) == 0 {
		keys = slices.Collect(maps.Keys(st.Counters))
	} else {
		for _, k := range want {
			if _, ok := st.Counters[k]; ok {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// OpName is op as the contract names it: set, increase, decrease or
// delete.
func OpName(op messages.Op) string {
	switch op {
	case messages.Op_OP_SET:
		return "set"
	case messages.Op_OP_INCREASE:
		return "increase"
	case messages.Op_OP_DECREASE:
		return "decrease"
	case messages.Op_OP_DELETE:
		return "delete"
	case messages.Op_OP_MEMBERS_ADD:
		return "members.add"
	case messages.Op_OP_MEMBERS_REMOVE:
		return "members.remove"
	}
	return op.String()
}

func verb(op messages.Op) string {
	if op == messages.Op_OP_DECREASE {
		return "decrease by"
	}
	return "increase by"
}

// updates lists the update messages of a committed change: one per key it
// touched, keys in sorted order.
func updates(group string, c *messages.Change) []*messages.Update {
	switch c.GetOp() {
	case messages.Op_OP_SET:
		out := make([]*messages.Update, 0, len(c.GetCounters()))
		for _, k := range slices.Sorted(maps.Keys(c.GetCounters())) {
			out = append(out, &messages.Update{GroupId: group, Key: k, Value: c.GetCounters()[k], Seq: c.GetSeq()})
		}
		return out
	case messages.Op_OP_DELETE:
		out := make([]*messages.Update, 0, len(c.GetKeys()))
		for _, k := range c.GetKeys() {
			out = append(out, &messages.Update{GroupId: group, Key: k, Seq: c.GetSeq(), Deleted: true})
		}
		return out
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		return nil // no counter changed
	default:
		return []*messages.Update{{GroupId: group, Key: c.GetKey(), Value: c.GetValue(), Seq: c.GetSeq()}}
	}
}
