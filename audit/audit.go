// Package audit reads a tally journal as the history it is: each change of
// a group with its user, request ID and the values before and after it
// (History), a group's counters as they were at a change or at a time
// (At), a check of every group's chain of events (Verify), with the
// repair of a group whose chain ends in bad events (Repair), and the move
// of events between journals (Export, Import). It reads the stream as
// stored, undecodable events included, builds states with the actors' own
// Apply, and checks every event with the journal's one rule (actors.Chain).
package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/contract"
	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// Journal is what audit reads: a *journal.Journal.
type Journal interface {
	Scan(ctx context.Context, group string, from uint64, fn func(journal.Stored) error) error
	Remove(ctx context.Context, group string, seq uint64) error
}

// KeyChange is what one change did to one key. Before is nil when the key
// was absent, After when the change deleted it.
type KeyChange struct {
	Key    string `json:"key"`
	Before *int64 `json:"before"`
	After  *int64 `json:"after"`
}

// Entry is one change of a group's history.
type Entry struct {
	Seq       uint64      `json:"seq"`       // the group's change sequence
	StreamSeq uint64      `json:"streamSeq"` // the event's, in the journal's stream
	Time      time.Time   `json:"time"`      // when the node made it (see eventTime)
	Op        string      `json:"op"`        // set, increase, decrease or delete
	User      string      `json:"user,omitempty"`
	RequestID string      `json:"requestID,omitempty"`
	Changes   []KeyChange `json:"changes"`
	// Members are the users a members.add added or a members.remove
	// removed.
	Members []string `json:"members,omitempty"`
	// BeforeUnknown: the journal no longer keeps the event before this
	// one (its per-group limit dropped it), so Before is known only for
	// increases and decreases, from the amount.
	BeforeUnknown bool `json:"beforeUnknown,omitempty"`
}

// Filter bounds a history: by the group's change sequence (0: no bound),
// by time (zero: no bound), and to its first Limit entries (0: all).
type Filter struct {
	FromSeq, ToSeq uint64
	From, To       time.Time
	Limit          int
}

func (f Filter) keeps(seq uint64, t time.Time) bool {
	return (f.FromSeq == 0 || seq >= f.FromSeq) && (f.ToSeq == 0 || seq <= f.ToSeq) &&
		(f.From.IsZero() || !t.Before(f.From)) && (f.To.IsZero() || !t.After(f.To))
}

// ErrBadEvent means a group's chain holds an event that Verify reports.
var ErrBadEvent = errors.New("audit: bad event")

// walk calls fn for each change of group in order, with the state before
// it and after it, either nil when the journal no longer keeps what it
// takes to know it. It fails at the first event that does not decode or
// breaks the journal's rule (see actors.Chain).
func walk(ctx context.Context, j Journal, group string, fn func(s journal.Stored, ev *messages.Event, c *messages.Change, before, after *messages.GroupState) error) error {
	if err := contract.CheckGroupID(group); err != nil {
		return err
	}
	ch := actors.NewChain(group)
	return j.Scan(ctx, group, 0, func(s journal.Stored) error {
		ev, err := s.Event()
		if err != nil {
			return fmt.Errorf("%w: group %s, stream sequence %d: does not decode: %w", ErrBadEvent, group, s.Seq, err)
		}
		err = ch.Follow(s.Seq, ev, func(c *messages.Change, before, after *messages.GroupState) error {
			return fn(s, ev, c, before, after)
		})
		if b, ok := errors.AsType[*actors.BadEventError](err); ok {
			return fmt.Errorf("%w: group %s, stream sequence %d: %s", ErrBadEvent, group, s.Seq, b.Reason)
		}
		return err
	})
}

// History lists group's changes that f keeps, oldest first.
func History(ctx context.Context, j Journal, group string, f Filter) ([]Entry, error) {
	var out []Entry
	errFull := errors.New("full")
	err := walk(ctx, j, group, func(s journal.Stored, ev *messages.Event, c *messages.Change, before, after *messages.GroupState) error {
		t := eventTime(s, ev)
		if !f.keeps(c.GetSeq(), t) {
			return nil
		}
		if f.Limit > 0 && len(out) == f.Limit {
			return errFull
		}
		e := Entry{Seq: c.GetSeq(), StreamSeq: s.Seq, Time: t, Op: actors.OpName(c.GetOp()),
			User: c.GetUser(), RequestID: c.GetRequestId(), BeforeUnknown: before == nil, Members: c.GetMembers(), Changes: []KeyChange{}}
		for _, k := range keysOf(c) {
			kc := KeyChange{Key: k}
			switch {
			case before != nil:
				kc.Before, kc.After = value(before, k), value(after, k)
			case c.GetOp() == messages.Op_OP_INCREASE:
				kc.Before, kc.After = ptr(c.GetValue()-c.GetAmount()), ptr(c.GetValue())
			case c.GetOp() == messages.Op_OP_DECREASE:
				kc.Before, kc.After = ptr(c.GetValue()+c.GetAmount()), ptr(c.GetValue())
			case c.GetOp() == messages.Op_OP_SET:
				kc.After = ptr(c.GetCounters()[k])
			}
			e.Changes = append(e.Changes, kc)
		}
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return out, err
	}
	return out, nil
}

// Point is where At looks: after the group's change Seq, or at Time (the
// last change made at or before it). Exactly one is set.
type Point struct {
	Seq  uint64
	Time time.Time
}

// State is a group's counters at a point: after change Seq, which the
// node made at Time (zero for a group not changed yet).
type State struct {
	Group    string           `json:"groupID"`
	Counters map[string]int64 `json:"counters"`
	Seq      uint64           `json:"seq"`
	Time     time.Time        `json:"time,omitzero"`
}

// ErrNotKept means the point is older than what the journal keeps of the
// group.
var ErrNotKept = errors.New("audit: the journal no longer keeps the group's events of that point")

// At returns group's counters as they were at p.
func At(ctx context.Context, j Journal, group string, p Point) (State, error) {
	st := State{Group: group, Counters: map[string]int64{}}
	done := errors.New("done")
	var visited, unknown bool
	oldest := uint64(0)
	err := walk(ctx, j, group, func(s journal.Stored, ev *messages.Event, c *messages.Change, before, after *messages.GroupState) error {
		if oldest == 0 {
			oldest = c.GetSeq()
		}
		t := eventTime(s, ev)
		if (p.Seq != 0 && c.GetSeq() > p.Seq) || (!p.Time.IsZero() && t.After(p.Time)) {
			if !visited {
				unknown = before == nil // the point precedes what is kept
			}
			return done
		}
		visited, unknown = true, after == nil
		if after != nil {
			st.Counters, st.Seq, st.Time = maps.Clone(after.GetCounters()), c.GetSeq(), t
		}
		return nil
	})
	if err != nil && !errors.Is(err, done) {
		return State{}, err
	}
	if unknown {
		return State{}, fmt.Errorf("%w: its oldest change kept is %d", ErrNotKept, oldest)
	}
	return st, nil
}

// Bad is an event Verify found wrong.
type Bad struct {
	Group     string `json:"groupID"`
	StreamSeq uint64 `json:"streamSeq"`
	Reason    string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	Groups int   `json:"groups"`
	Events int   `json:"events"`
	Bad    []Bad `json:"bad"`
}

// Verify checks every group's chain (group "" ) or one group's: each event
// decodes, is one the service writes (IDs and keys of the contract, see
// actors.CheckEvent), names the group's previous event as its predecessor, and
// carries the state its predecessor's with its changes applied gives.
// Every event from a group's first bad one on is reported: the later ones
// follow from it.
func Verify(ctx context.Context, j Journal, group string) (Report, error) {
	var r Report
	if group != "" {
		if err := contract.CheckGroupID(group); err != nil {
			return r, err
		}
	}
	chains := map[string]*actors.Chain{}
	broken := map[string]uint64{} // a group's first bad event
	err := j.Scan(ctx, group, 0, func(s journal.Stored) error {
		r.Events++
		ch, ok := chains[s.Group]
		if !ok {
			ch = actors.NewChain(s.Group)
			chains[s.Group] = ch
		}
		why := ""
		if first, ok := broken[s.Group]; ok {
			why = fmt.Sprintf("follows bad event %d", first)
		} else if ev, err := s.Event(); err != nil {
			why = fmt.Sprintf("does not decode: %v", err)
		} else if err := ch.Follow(s.Seq, ev, nil); err != nil {
			why = err.Error()
		}
		if why != "" {
			r.Bad = append(r.Bad, Bad{Group: s.Group, StreamSeq: s.Seq, Reason: why})
			if _, ok := broken[s.Group]; !ok {
				broken[s.Group] = s.Seq
			}
		}
		return nil
	})
	r.Groups = len(chains)
	return r, err
}

// Repair removes group's bad events, those Verify reports: from its first
// bad event on, so that the group loads from its last good event. It
// returns what it removed. plan, when not nil, sees the events first and
// may refuse (return false), and then nothing is removed.
func Repair(ctx context.Context, j Journal, group string, plan func([]Bad) bool) ([]Bad, error) {
	r, err := Verify(ctx, j, group)
	if err != nil {
		return nil, err
	}
	if len(r.Bad) == 0 || (plan != nil && !plan(r.Bad)) {
		return nil, nil
	}
	// The newest first: should the repair stop halfway, what is left is
	// still the group's good events and some of its bad ones.
	bad := slices.Clone(r.Bad)
	slices.Reverse(bad)
	for i, b := range bad {
		if err := j.Remove(ctx, group, b.StreamSeq); err != nil {
			return bad[:i], err
		}
	}
	return bad, nil
}

// eventTime is when the node made an event (its writer's clock), which
// an export and import keep; the stream's own time for an event without.
func eventTime(s journal.Stored, ev *messages.Event) time.Time {
	if ns := ev.GetUnixNano(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return s.Time
}

func keysOf(c *messages.Change) []string {
	switch c.GetOp() {
	case messages.Op_OP_SET:
		return slices.Sorted(maps.Keys(c.GetCounters()))
	case messages.Op_OP_DELETE:
		return c.GetKeys()
	case messages.Op_OP_MEMBERS_ADD, messages.Op_OP_MEMBERS_REMOVE:
		return nil
	default:
		return []string{c.GetKey()}
	}
}

func value(st *messages.GroupState, k string) *int64 {
	if v, ok := st.GetCounters()[k]; ok {
		return &v
	}
	return nil
}

func ptr(v int64) *int64 { return &v }
