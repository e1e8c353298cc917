package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/membership"
	"github.com/tallyhq/tally/messages"
)

// allowed refuses a user's call on a group with members when the user is
// not one. An admin's call (user "") is never refused.
func (g *group) allowed(user string) error {
	if user == "" || !g.state.GetMembersOnly() || g.members.Has(user) {
		return nil
	}
	return fmt.Errorf("%w: %s is not a member of group %s", ErrNotAllowed, user, g.id)
}

// list answers a members.list: a page of the members in byte order.
func (g *group) list(req *messages.ListMembersRequest) *messages.ListMembersReply {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = DefaultListMembers
	}
	ids, more := g.members.List(req.GetAfter(), limit)
	out := &messages.ListMembersReply{GroupId: g.id, UserIds: ids}
	if more && len(ids) > 0 {
		out.Next = ids[len(ids)-1]
	}
	return out
}

// An indexJob writes the index and calls Config.MembersChanged for one
// members command, off the actor. A group runs its jobs one at a time in
// order, so that the index sees a group's changes in the journal's order.
type indexJob struct {
	add, remove []string // users to index and to unindex
	changed     []string // users whose membership changed
	// then are answered once the job is done; before, a remove waiting
	// for its users to leave the index before its append.
	then   []*pending
	before *pending
	err    error
}

// settle answers a command the group is done with. A members command is
// answered once the index holds its outcome (retried, answered: its
// first outcome): its add's users are indexed, a remove's were unindexed
// before its append (again now when retried), and their connections are
// told. The index follows the members of now, not the request: a retried
// add of a user removed since must not index her again, nor a retried
// remove unindex a user added back since.
func (g *group) settle(p *pending, retried bool) {
	if p.err != nil || !isMembers(p.cmd.GetOp()) {
		g.finish(p)
		return
	}
	j := &indexJob{changed: p.result.GetMembers(), then: []*pending{p}}
	switch {
	case p.cmd.GetOp() == messages.Op_OP_MEMBERS_ADD:
		// Indexing every user of the request who is a member now heals an
		// index that missed an earlier add.
		j.add = g.requested(p, true)
	case retried:
		j.remove = g.requested(p, false)
	}
	if !retried && p.result.GetSeq() == 0 {
		j.changed = nil // nothing changed
	}
	g.schedule(j)
}

// requested returns the users of a members command who are members now,
// or who are not.
func (g *group) requested(p *pending, members bool) []string {
	var out []string
	for _, u := range p.cmd.GetMembers() {
		if g.members.Has(u) == members {
			out = append(out, u)
		}
	}
	return out
}

// unindex starts taking a remove's users out of the index, before its
// append, and reports whether the remove must wait for it.
func (g *group) unindex(p *pending) bool {
	if p.cmd.GetOp() != messages.Op_OP_MEMBERS_REMOVE || g.cfg.Index == nil || p.unindexed {
		return false
	}
	g.schedule(&indexJob{remove: p.cmd.GetMembers(), before: p})
	return true
}

func (g *group) schedule(j *indexJob) {
	g.jobs = append(g.jobs, j)
	g.nextJob()
}

// nextJob starts the next index job unless one runs.
func (g *group) nextJob() {
	if g.running != nil || len(g.jobs) == 0 {
		return
	}
	j := g.jobs[0]
	g.jobs = slices.Delete(g.jobs, 0, 1)
	g.running = j
	idx, hook, timeout, id, pass := g.cfg.Index, g.cfg.MembersChanged, g.cfg.Timeout, g.id, &g.pass
	g.loads.run(func(ctx context.Context) {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if idx != nil && len(j.remove) > 0 {
			j.err = idx.Remove(c, id, j.remove)
		}
		if idx != nil && j.err == nil && len(j.add) > 0 {
			j.err = idx.Add(c, id, j.add)
		}
		if j.err == nil && hook != nil && len(j.changed) > 0 {
			if err := hook(c, j.changed); err != nil {
				j.err = fmt.Errorf("tell of the users whose membership changed: %w", err)
			}
		}
		pass.send(&indexed{job: j})
	})
}

func (g *group) onIndexed(j *indexJob) {
	g.running = nil
	if j.err != nil {
		g.cfg.Logger.Warn("membership index write failed", slog.String("group", g.id), slog.Any("error", j.err))
	}
	if p := j.before; p != nil {
		if j.err == nil {
			p.unindexed = true
		} else if i := slices.Index(g.queue, p); i >= 0 {
			g.queue = slices.Delete(g.queue, i, i+1)
			p.err = fmt.Errorf("%w: group %s: the membership index: %w", ErrUnavailable, g.id, j.err)
			g.finish(p)
		}
	}
	for _, p := range j.then {
		if j.err != nil {
			p.result, p.err = nil, fmt.Errorf("%w: group %s: the change is journaled, its index or disconnections not done (%w); retry with the same requestID", ErrUnavailable, g.id, j.err)
		}
		g.finish(p)
	}
	g.nextJob()
	g.flush()
	g.stopIfDone()
}

// errMembersNotKept: a group with members cannot be served without them,
// and the journal dropped a change of them (its per-group limit).
var errMembersNotKept = errors.New("the journal no longer keeps this change of the group's members, so its members are not known (keep every event of groups with members: --journal-keep 0)")

// loadMembers rebuilds the member set of a group whose last event, at
// stream sequence seq, is last (nil: none): it follows the events that
// changed members back from it (Event.MembersSeq), replays their changes
// and checks the result against the count and digest the last event's
// state carries. It returns the set and the stream sequence of the last
// event that changed it.
func loadMembers(ctx context.Context, j Journal, group string, last *messages.Event, seq uint64) (*membership.Set, uint64, error) {
	if last == nil || !last.GetState().GetMembersOnly() {
		return &membership.Set{}, last.GetMembersSeq(), nil
	}
	membersSeq := last.GetMembersSeq()
	var chain []*messages.Event
	if changesMembers(last) {
		chain, membersSeq = append(chain, last), seq
	}
	for at := last.GetMembersSeq(); at != 0; {
		ev, err := j.At(ctx, group, at)
		if errors.Is(err, journal.ErrRemoved) {
			return nil, 0, fmt.Errorf("event %d: %w", at, errMembersNotKept)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("members: %w", err)
		}
		if !changesMembers(ev) || ev.GetMembersSeq() >= at {
			return nil, 0, fmt.Errorf("event %d is named as a change of members and is none, or names a later one: %w", at, ErrCorruptEvent)
		}
		chain = append(chain, ev)
		at = ev.GetMembersSeq()
	}
	in := map[string]bool{}
	for i := len(chain) - 1; i >= 0; i-- {
		for _, c := range chain[i].GetChanges() {
			for _, u := range c.GetMembers() {
				if c.GetOp() == messages.Op_OP_MEMBERS_ADD {
					in[u] = true
				} else {
					delete(in, u)
				}
			}
		}
	}
	set := membership.New(slices.Collect(maps.Keys(in)))
	st := last.GetState()
	if uint64(set.Len()) != st.GetMemberCount() || set.Digest() != st.GetMembersDigest() {
		return nil, 0, fmt.Errorf("its changes of members give %d members, its last event says %d (or another digest): %w", set.Len(), st.GetMemberCount(), ErrCorruptEvent)
	}
	return set, membersSeq, nil
}

// changesMembers reports whether ev has a members change.
func changesMembers(ev *messages.Event) bool {
	for _, c := range ev.GetChanges() {
		if isMembers(c.GetOp()) {
			return true
		}
	}
	return false
}
