package actors

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// Chain is one group's events as they are read in commit order, checked
// with the journal's rule: each event is one the service writes (see
// CheckEvent), names the stream sequence of the group's previous event as
// its predecessor (PrevSeq, 0 for the group's first), and carries the
// state its changes applied to the state before it give. A group's first
// event whose predecessor the journal no longer keeps is trusted: its
// state is taken as it is. A group's load, Rebuild and the audit tools
// all check events with it.
type Chain struct {
	group   string
	invalid error // why group is not of the contract; nil when it is
	started bool
	last    uint64               // the stream sequence of the last event followed
	state   *messages.GroupState // the state after it, the chain's own
	// vetted: state's keys are of the contract, so an event whose state
	// its changes give needs no check of its state's keys.
	vetted bool
	broken uint64 // the stream sequence of the first bad event; 0: none
	// members is the group's member set after the last event followed,
	// nil when not known (a chain that starts after the group's first
	// event); membersSeq is the stream sequence of the last event that
	// changed it, which the next event must name (Event.MembersSeq).
	members    *membership.Set
	membersSeq uint64
}

// NewChain returns the chain of group before its first event.
func NewChain(group string) *Chain {
	ch := &Chain{group: group, vetted: true, members: &membership.Set{}}
	if err := contract.CheckGroupID(group); err != nil {
		ch.invalid = badEvent("%v", err)
	}
	return ch
}

// NewChainAfter returns the chain of group whose last event, at stream
// sequence seq, left it in state st (copied): the next event follows it.
// Only the next event's state tells whether st holds keys of the contract.
func NewChainAfter(group string, seq uint64, st *messages.GroupState) *Chain {
	ch := NewChain(group)
	ch.started, ch.last, ch.state, ch.vetted = true, seq, CloneState(st), false
	ch.members = nil
	return ch
}

// Members returns the group's members after the last event followed, nil
// when the chain does not know them: it started after the group's first
// event. It is the chain's own: the next Follow changes it.
func (ch *Chain) Members() *membership.Set { return ch.members }

// State returns the group's state after the last event followed, nil
// before the first. It is the chain's own: the next Follow changes it.
func (ch *Chain) State() *messages.GroupState { return ch.state }

// BadEventError is why an event breaks the journal's rule (see Chain);
// it wraps ErrCorruptEvent.
type BadEventError struct {
	Reason string
}

func (e *BadEventError) Error() string { return e.Reason }

func (e *BadEventError) Unwrap() error { return ErrCorruptEvent }

func badEvent(format string, args ...any) *BadEventError {
	return &BadEventError{Reason: fmt.Sprintf(format, args...)}
}

// Follow takes ev, the group's event at stream sequence seq, as the
// chain's next event. each, when not nil, sees every change with the
// group's state before and after it, either nil when the journal no longer
// keeps what it takes to know it (a trusted first event's changes); each
// must neither keep nor change them. A bad event gives a *BadEventError and
// breaks the chain: every later event follows from it and is refused too.
// An error of each is returned as it is and leaves the chain as it was.
func (ch *Chain) Follow(seq uint64, ev *messages.Event, each func(c *messages.Change, before, after *messages.GroupState) error) error {
	if ch.broken != 0 {
		return badEvent("follows bad event %d", ch.broken)
	}
	first := !ch.started
	trusted := first && ev.GetPrevSeq() != 0
	if err := ch.checkEvent(ev, trusted || !ch.vetted); err != nil {
		return ch.refuse(seq, ev, err)
	}
	var before *messages.GroupState // nil: unknown
	switch {
	case first && !trusted:
		before = newState()
	case trusted:
		ch.members = nil
	case ev.GetPrevSeq() != ch.last:
		return ch.refuse(seq, ev, badEvent("names %d as its predecessor, the group's previous event is %d", ev.GetPrevSeq(), ch.last))
	default:
		before = ch.state
	}
	if !trusted && ch.members != nil && ev.GetMembersSeq() != ch.membersSeq {
		return ch.refuse(seq, ev, badEvent("names %d as the last event that changed members, it is %d", ev.GetMembersSeq(), ch.membersSeq))
	}
	if err := ch.checkMembers(ev); err != nil {
		return ch.refuse(seq, ev, err)
	}
	var after *messages.GroupState
	var err error
	if each == nil {
		after, err = ch.applyAll(seq, before, ev)
	} else {
		after, err = ch.applyEach(seq, before, ev, each)
	}
	if err != nil {
		return err
	}
	if before != nil && !SameState(after, ev.GetState()) {
		return ch.refuse(seq, ev, badEvent("carries a state its changes do not give"))
	}
	ch.started, ch.last, ch.state, ch.vetted = true, seq, after, true
	ch.membersSeq = ev.GetMembersSeq()
	for _, c := range ev.GetChanges() {
		if isMembers(c.GetOp()) {
			ch.membersSeq = seq
			if ch.members != nil {
				applyMembers(ch.members, c)
			}
		}
	}
	return nil
}

// checkMembers checks that ev's members changes add users who are not
// members and remove users who are, when the chain knows the members.
func (ch *Chain) checkMembers(ev *messages.Event) error {
	if ch.members == nil {
		return nil
	}
	var added, removed []string // by earlier changes of ev
	for _, c := range ev.GetChanges() {
		for _, u := range c.GetMembers() {
			is := (ch.members.Has(u) || slices.Contains(added, u)) && !slices.Contains(removed, u)
			switch {
			case c.GetOp() == messages.Op_OP_MEMBERS_ADD && is:
				return badEvent("change %d adds %s, a member already", c.GetSeq(), contract.Quote(u))
			case c.GetOp() == messages.Op_OP_MEMBERS_REMOVE && !is:
				return badEvent("change %d removes %s, not a member", c.GetSeq(), contract.Quote(u))
			case c.GetOp() == messages.Op_OP_MEMBERS_ADD:
				added = append(added, u)
				removed = slices.DeleteFunc(removed, func(r string) bool { return r == u })
			default:
				removed = append(removed, u)
				added = slices.DeleteFunc(added, func(a string) bool { return a == u })
			}
		}
	}
	return nil
}

// applyAll applies ev's changes to before, in place, and returns the
// state after them; a copy of the state ev carries when before is nil
// (unknown).
func (ch *Chain) applyAll(seq uint64, before *messages.GroupState, ev *messages.Event) (*messages.GroupState, error) {
	if before == nil {
		return CloneState(ev.GetState()), nil
	}
	if err := Apply(before, ev); err != nil {
		return nil, ch.refuse(seq, ev, badEvent("its changes do not apply: %v", err))
	}
	return before, nil
}

// applyEach applies ev's changes to copies of before, one by one, shows
// each to each, and returns the state after the last one: when before is
// nil (unknown), a copy of the state ev carries.
func (ch *Chain) applyEach(seq uint64, before *messages.GroupState, ev *messages.Event, each func(c *messages.Change, before, after *messages.GroupState) error) (*messages.GroupState, error) {
	changes := ev.GetChanges()
	for i, c := range changes {
		var after *messages.GroupState
		switch {
		case before != nil:
			after = CloneState(before)
			if err := applyChange(after, c); err != nil {
				return nil, ch.refuse(seq, ev, badEvent("its changes do not apply: %v", err))
			}
		case i == len(changes)-1:
			after = CloneState(ev.GetState())
		}
		if err := each(c, before, after); err != nil {
			return nil, err
		}
		before = after
	}
	return before, nil
}

// refuse breaks the chain at ev, the event at stream sequence seq, and
// returns why: the first check of CheckEvent it fails, the order in which
// they run, or else reason.
func (ch *Chain) refuse(seq uint64, ev *messages.Event, reason error) error {
	ch.broken = seq
	if err := ch.checkEvent(ev, true); err != nil {
		return err
	}
	return reason
}

// CheckEvent checks that ev is an event the service writes for group, as
// Chain checks each event before it checks its place in the chain: a
// group ID and keys of the contract, at least one change, each a valid
// command's outcome (a user ID or none for an admin's, the fields of its
// operation only), and a state of at most MaxKeys keys whose version is
// the last change's. It returns a *BadEventError.
func CheckEvent(group string, ev *messages.Event) error {
	return NewChain(group).checkEvent(ev, true)
}

// checkEvent is CheckEvent for the chain's group. stateKeys false skips
// the check of the keys of the state ev carries, which follows from the
// other checks when its changes give it from a state of checked keys.
func (ch *Chain) checkEvent(ev *messages.Event, stateKeys bool) error {
	if ch.invalid != nil {
		return ch.invalid
	}
	changes := ev.GetChanges()
	switch {
	case len(changes) == 0:
		return badEvent("has no change")
	case ev.GetState() == nil:
		return badEvent("carries no state")
	case ev.GetUnixNano() < 0:
		return badEvent("was made at %d ns before 1970", -ev.GetUnixNano())
	}
	for _, c := range changes {
		if err := checkChange(c); err != nil {
			return badEvent("change %d: %v", c.GetSeq(), err)
		}
	}
	st := ev.GetState()
	if n := len(st.GetCounters()); n > MaxKeys {
		return badEvent("carries %d keys, at most %d", n, MaxKeys)
	}
	if stateKeys {
		for k := range st.GetCounters() {
			if err := contract.CheckKey(k); err != nil {
				return badEvent("its state: %v", err)
			}
		}
	}
	if last := changes[len(changes)-1].GetSeq(); st.GetVersion() != last {
		return badEvent("carries version %d, its last change is %d", st.GetVersion(), last)
	}
	return nil
}

// checkChange checks one change as the service writes it.
func checkChange(c *messages.Change) error {
	if err := validateCommand(c); err != nil {
		return err
	}
	if c.GetUser() != "" {
		if err := contract.CheckUserID(c.GetUser()); err != nil {
			return err
		}
	}
	var stray bool
	switch c.GetOp() {
	case messages.Op_OP_SET:
		stray = c.GetKey() != "" || c.GetAmount() != 0 || c.GetValue() != 0 || len(c.GetKeys()) > 0
	case messages.Op_OP_INCREASE, messages.Op_OP_DECREASE:
		stray = len(c.GetCounters()) > 0 || len(c.GetKeys()) > 0
	case messages.Op_OP_DELETE:
		if len(c.GetKeys()) == 0 {
			return errors.New("a delete that removed no key")
		}
		stray = c.GetKey() != "" || c.GetAmount() != 0 || c.GetValue() != 0 || len(c.GetCounters()) > 0
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		for i := 1; i < len(c.GetMembers()); i++ {
			if c.GetMembers()[i-1] >= c.GetMembers()[i] {
				return fmt.Errorf("%s lists its users out of order or twice", OpName(c.GetOp()))
			}
		}
		stray = c.GetKey() != "" || c.GetAmount() != 0 || c.GetValue() != 0 || len(c.GetCounters()) > 0 || len(c.GetKeys()) > 0
	}
	if !isMembers(c.GetOp()) && len(c.GetMembers()) > 0 {
		stray = true
	}
	if stray {
		return fmt.Errorf("%s carries fields of another operation", OpName(c.GetOp()))
	}
	return nil
}
