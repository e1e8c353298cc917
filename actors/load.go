package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/tallyhq/tally/journal"
	"github.com/tallyhq/tally/messages"
)

// load reads the group's last event off the actor's goroutine, checks
// that it follows the event before it, then reports back with a loaded
// message. It also reads the request IDs of another writer's events,
// those after known within the dedupe window (the node's table has every
// request ID this node committed, not another writer's): after a conflict
// (known > 0), and in a cluster while the node has held the group's
// partition for less than a window (known = 0: the whole window).
func (g *group) load(known uint64) {
	// The horizon is by the wall clock, as the events' stamps are (another
	// writer's, by its own clock). A wall clock set back reads older
	// events too, whose request IDs are still kept at most a window
	// (expiry counts an event stamped in the future as new); one set
	// forward takes the window's events for older than the window, and
	// forgets their request IDs now rather than within the window.
	horizon := g.cfg.Clock.Now().UnixNano() - int64(g.cfg.DedupeWindow)
	// After a conflict or another writer's event, read the request IDs of
	// the events the node did not write.
	recent := known > 0 || g.await
	if g.leases != nil {
		epoch, since, ok := g.leases.Lease(g.part)
		if !ok {
			g.disown()
			return
		}
		g.epoch = epoch
		// since is the system's wall clock now less how long the node has
		// held the lease by the monotonic clock (not a clock of the
		// test's): the comparison is of durations, whatever the wall
		// clock did meanwhile.
		recent = recent || since > time.Now().Add(-g.cfg.DedupeWindow).UnixNano()
	}
	g.ready, g.busy = false, true
	pass := &g.pass
	j, id, timeout, limit := g.cfg.Journal, g.id, g.cfg.Timeout, g.cfg.RecoverEvents
	window := g.cfg.DedupeWindow
	log := g.cfg.Logger
	// Only a replicated journal changes leaders, and leaves reads
	// unanswered meanwhile.
	retry := g.leases != nil
	// In a cluster the node serves what it loads until it loses the lease:
	// a read that a cut-off stream leader answered must not be it.
	var confirm Confirmer
	if g.leases != nil {
		confirm, _ = j.(Confirmer)
	}
	await, past := g.await, g.seq
	g.await = false
	g.loads.run(func(ctx context.Context) {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		res := &loaded{}
		defer func() {
			if took := time.Since(start); took > slowLoad {
				log.Info("slow group load", slog.String("group", id), slog.Duration("took", took), slog.Int("requestIDs", len(res.recent)), slog.Bool("recover", recent))
			}
		}()
		read := func() {
			if retry {
				res.ev, res.seq, res.err = lastEvent(c, j, id)
			} else {
				res.ev, res.seq, res.err = j.Last(c, id)
			}
		}
		read()
		// Another writer's event, once stored, is past the group's last;
		// one the stream refused never comes.
		for i := 0; await && res.err == nil && res.seq <= past && i < staleReads && c.Err() == nil; i++ {
			select {
			case <-c.Done():
			case <-time.After(staleWait):
				read()
			}
		}
		if confirm != nil {
			confirmLast(c, confirm, id, res, read)
		}
		if res.err == nil && res.ev != nil {
			res.err = checkLast(c, j, id, res.ev, res.seq)
		}
		if res.err == nil && res.ev != nil && window > 0 && recent {
			res.recent, res.err = recentChanges(c, j, id, res.ev, res.seq, known, horizon, limit)
		}
		if res.err == nil {
			res.members, res.membersSeq, res.err = loadMembers(c, j, id, res.ev, res.seq)
		}
		pass.send(res)
	})
}

// confirmLast confirms that the group's last event is the one res holds,
// reading it again until one is confirmed or ctx ends. A read is answered
// by a server that believes it leads the group's stream: one that was cut
// off from the other replicas believes it for seconds after they elected
// another leader, which stored events that a node then acknowledged, and
// it answers from what it had (a cut node that the cut healed before its
// server noticed loaded a group's old state, and served it).
func confirmLast(ctx context.Context, cf Confirmer, group string, res *loaded, read func()) {
	for res.err == nil {
		// One probe is bounded as one read is: a probe the stream never
		// answered (lost while its leader was elected, as a new cluster's
		// first loads found) is sent again, rather than waited for until
		// the load's timeout.
		actx, cancel := context.WithTimeout(ctx, readAttempt)
		err := cf.Confirm(actx, group, res.seq)
		cancel()
		if err == nil {
			return
		}
		// A conflict: the read was old, or the group's stream leader is
		// storing an append to it; else the stream elects a leader, or
		// the probe went unanswered.
		select {
		case <-ctx.Done():
			res.err = fmt.Errorf("confirm the last event of group %s: %w", group, err)
			return
		case <-time.After(confirmWait):
		}
		read()
	}
}

// confirmWait is how long a load waits before it reads a group's last
// event again, after a read it could not confirm.
const confirmWait = 50 * time.Millisecond

// A reload for another writer's event reads the group's last event again
// every staleWait until it is the new one, at most staleReads times.
const (
	staleReads = 50
	staleWait  = 10 * time.Millisecond
)

// replayGroupTimeout bounds a group's replay of its recent events before
// a load walks them one by one instead.
const replayGroupTimeout = 2 * time.Second

// slowLoad is how long a load takes before the log says so.
const slowLoad = 250 * time.Millisecond

// readAttempt bounds one read of a group's last event: one that finds no
// answer (a replicated journal electing a leader) is tried again until the
// load's own timeout, so that the load succeeds as soon as the journal is
// back.
const readAttempt = 500 * time.Millisecond

func lastEvent(ctx context.Context, j Journal, group string) (*messages.Event, uint64, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, readAttempt)
		ev, seq, err := j.Last(actx, group)
		cancel()
		if err == nil || ctx.Err() != nil || !journal.Unanswered(err) {
			return ev, seq, err
		}
	}
}

// checkLast checks a group's last event, at stream sequence seq, with the
// journal's rule (see Chain) against the event before it. A group is
// never served from an event that breaks it. When an operator removed the
// event before (a repair), the last one's own state stands.
func checkLast(ctx context.Context, j Journal, group string, ev *messages.Event, seq uint64) error {
	ch := NewChain(group)
	if prev := ev.GetPrevSeq(); prev != 0 {
		if prev >= seq {
			return fmt.Errorf("event %d names %d as the event before it: %w", seq, prev, ErrCorruptEvent)
		}
		p, err := j.At(ctx, group, prev)
		switch {
		case errors.Is(err, journal.ErrRemoved):
			// Not kept: the chain trusts the last event's state.
		case err != nil:
			return fmt.Errorf("event %d follows event %d: %w", seq, prev, err)
		default:
			ch = NewChainAfter(group, prev, p.GetState())
		}
	}
	if err := ch.Follow(seq, ev, nil); err != nil {
		return fmt.Errorf("event %d: %w", seq, err)
	}
	return nil
}

// recentChanges collects the changes that carry request IDs from the
// group's events newer than known and not older than horizon, back from
// ev, its last event at stream sequence last. It walks back at most limit
// events one by one; a journal that is a GroupReplayer replays the rest.
func recentChanges(ctx context.Context, j Journal, group string, ev *messages.Event, last, known uint64, horizon int64, limit int) ([]recentChange, error) {
	var out []recentChange
	collect := func(ev *messages.Event) {
		for _, c := range ev.GetChanges() {
			if c.GetRequestId() != "" {
				out = append(out, recentChange{change: c, at: ev.GetUnixNano()})
			}
		}
	}
	for read := 0; ev.GetUnixNano() >= horizon; read++ {
		prev := ev.GetPrevSeq()
		if read == limit {
			if r, ok := j.(GroupReplayer); ok {
				// The server stamps messages by its clock, the writer events by
				// its own: a second's margin covers a skew between them.
				since := time.Unix(0, horizon).Add(-time.Second)
				walked := len(out)
				// A replay goes on through its consumers' stalls; one that
				// takes too long (a replica far behind) gives way to the
				// walk, one event at a time through the leader.
				rctx, cancel := context.WithTimeout(ctx, replayGroupTimeout)
				err := r.ReplayGroup(rctx, group, since, last, func(seq uint64, ev *messages.Event) error {
					if seq > known && ev.GetUnixNano() >= horizon {
						collect(ev)
					}
					return nil
				})
				stalled := rctx.Err() != nil && ctx.Err() == nil
				cancel()
				if !stalled {
					return out[walked:], err
				}
				out, limit = out[:walked], math.MaxInt
			}
		}
		collect(ev)
		if prev == 0 || prev <= known || read >= limit {
			break
		}
		var err error
		if ev, err = j.At(ctx, group, prev); errors.Is(err, journal.ErrRemoved) {
			break // an operator removed it
		} else if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (g *group) onLoaded(m *loaded) {
	g.busy = false
	if m.err != nil {
		g.cfg.Logger.Warn("loading group from the journal failed", slog.String("group", g.id), slog.Any("error", m.err))
		g.failed = fmt.Errorf("%w: load group %s: %w", ErrUnavailable, g.id, m.err)
		switch {
		case errors.Is(m.err, errMembersNotKept):
			g.failed = fmt.Errorf("%w: group %s cannot be loaded: %w", ErrUnavailable, g.id, m.err)
		case errors.Is(m.err, journal.ErrCorrupt) || errors.Is(m.err, ErrCorruptEvent):
			g.failed = fmt.Errorf("%w: group %s cannot be loaded: its last event in the journal is damaged (%w); an operator must repair the journal", ErrUnavailable, g.id, m.err)
		}
		for _, p := range g.queue {
			p.err = g.failed
			g.finish(p)
		}
		g.queue = nil
		// Stop, so the next command activates the group afresh.
		g.pass.begin()
		return
	}
	if !g.owns() {
		g.disown()
		return
	}
	g.state, g.seq = CloneState(m.ev.GetState()), m.seq
	g.members, g.membersSeq = m.members, m.membersSeq
	for _, r := range m.recent {
		now, expires := expiry(g.cfg.Clock, g.cfg.DedupeWindow, r.at)
		rememberChange(g.seen, g.id, r.change, expires, now)
	}
	if g.reloadIfStale() {
		return
	}
	g.ready = true
	writes := g.queue[:0]
	for _, p := range g.queue {
		if p.cmd == nil {
			p.reply.Reply(g.answer(p.get, p.list, p.member))
			continue
		}
		writes = append(writes, p)
	}
	g.queue = writes
	g.flush()
	g.stopIfDone()
}
