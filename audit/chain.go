package audit

import (
	"errors"
	"fmt"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/messages"
)

// chain is one group's events as they are read in commit order: the
// journal's rule that each event names its predecessor and carries the
// state its changes give. History, At, Verify and Import all check a
// group with it.
type chain struct {
	group   string
	started bool
	last    uint64               // the stream sequence of the group's last event
	state   *messages.GroupState // after it; nil: unknown (its older events are not kept)
}

// badEvent is why an event breaks the journal's rules.
type badEvent struct{ reason string }

func (b *badEvent) Error() string { return b.reason }

func bad(format string, args ...any) error {
	return &badEvent{reason: fmt.Sprintf(format, args...)}
}

// changeFunc sees one change of an event with the group's state before
// and after it, either nil when the journal no longer keeps what it takes
// to know it.
type changeFunc func(c *messages.Change, before, after *messages.GroupState) error

// follow takes ev, the group's event at stream sequence seq, as the
// chain's next event. ev must be an event the service writes (see
// checkEvent) and name the group's previous event as its predecessor; its
// changes applied to the state before it must give the state it carries.
// A group's first event that names a predecessor the journal no longer
// keeps is trusted: its state is taken as it is. each, when not nil, sees
// every change. A bad event gives a *badEvent and leaves the chain as it
// was; an error of each is returned as it is.
func (ch *chain) follow(seq uint64, ev *messages.Event, each changeFunc) error {
	if err := checkEvent(ch.group, ev); err != nil {
		return err
	}
	state := ch.state
	switch {
	case !ch.started && ev.GetPrevSeq() == 0:
		state = &messages.GroupState{Counters: map[string]int64{}}
	case !ch.started:
		state = nil
	case ev.GetPrevSeq() != ch.last:
		return bad("names %d as its predecessor, the group's previous event is %d", ev.GetPrevSeq(), ch.last)
	}
	state, err := apply(state, ev, each)
	if err != nil {
		return err
	}
	if state != nil && !actors.SameState(state, ev.GetState()) {
		return bad("carries a state its changes do not give")
	}
	// Nothing applies changes to the event's own state: the next event
	// is applied to a copy.
	ch.started, ch.last, ch.state = true, seq, ev.GetState()
	return nil
}

// apply applies ev's changes to a copy of state (nil: unknown) and
// returns the state after them: nil when state is, unless each is given,
// which sees every change and is told the state after the last one from
// what ev carries.
func apply(state *messages.GroupState, ev *messages.Event, each changeFunc) (*messages.GroupState, error) {
	if each == nil {
		if state == nil {
			return nil, nil
		}
		state = actors.CloneState(state)
		if err := actors.Apply(state, ev); err != nil {
			return nil, bad("its changes do not apply: %v", err)
		}
		return state, nil
	}
	for i, c := range ev.GetChanges() {
		var after *messages.GroupState
		switch {
		case state != nil:
			after = actors.CloneState(state)
			if err := actors.Apply(after, &messages.Event{Changes: []*messages.Change{c}}); err != nil {
				return nil, bad("its changes do not apply: %v", err)
			}
		case i == len(ev.GetChanges())-1:
			after = actors.CloneState(ev.GetState()) // what the event carries
		}
		if err := each(c, state, after); err != nil {
			return nil, err
		}
		state = after
	}
	return state, nil
}

// checkEvent checks what the service checks before it writes an event,
// and the shape it writes it in: a group ID and keys of the contract, at
// least one change, each a valid command's outcome (a user ID or none for
// an admin's, the fields of its operation only), and a state of at most
// the contract's number of keys whose version is the last change's.
func checkEvent(group string, ev *messages.Event) error {
	if err := contract.CheckGroupID(group); err != nil {
		return bad("%v", err)
	}
	changes := ev.GetChanges()
	switch {
	case len(changes) == 0:
		return bad("has no change")
	case ev.GetState() == nil:
		return bad("carries no state")
	case ev.GetUnixNano() < 0:
		return bad("was made at %d ns before 1970", -ev.GetUnixNano())
	}
	for _, c := range changes {
		if err := checkChange(group, c); err != nil {
			return bad("change %d: %v", c.GetSeq(), err)
		}
	}
	st := ev.GetState()
	if n := len(st.GetCounters()); n > contract.MaxKeys {
		return bad("carries %d keys, at most %d", n, contract.MaxKeys)
	}
	for k := range st.GetCounters() {
		if err := contract.CheckKey(k); err != nil {
			return bad("its state: %v", err)
		}
	}
	if last := changes[len(changes)-1].GetSeq(); st.GetVersion() != last {
		return bad("carries version %d, its last change is %d", st.GetVersion(), last)
	}
	return nil
}

// checkChange checks one change as the service writes it.
func checkChange(group string, c *messages.Change) error {
	if err := actors.ValidateChange(group, c); err != nil {
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
	}
	if stray {
		return fmt.Errorf("%s carries fields of another operation", opName(c.GetOp()))
	}
	return nil
}
