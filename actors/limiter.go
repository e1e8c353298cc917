package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// window is a sliding-window log: the times of the last admitted calls, at
// most limit of them, in a ring.
type window struct {
	times []int64 // unix nanos, ring of len limit
	next  int     // where the next admitted call goes: the oldest entry
	n     int     // entries in use
}

func newWindow(limit int) window { return window{times: make([]int64, limit)} }

// freed is when the window next admits a call: the oldest admitted call
// leaves it then.
func (w *window) freed(span time.Duration) int64 { return w.times[w.next] + int64(span) }

// admit admits a call at now if fewer than limit calls were admitted within
// the span before it. A refused call is not recorded, so it does not count.
func (w *window) admit(now int64, span time.Duration) bool {
	if w.n == len(w.times) && w.times[w.next] > now-int64(span) {
		return false
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % len(w.times)
	if w.n < len(w.times) {
		w.n++
	}
	return true
}

// newest is the time of the last admitted call, 0 when none.
func (w *window) newest() int64 {
	if w.n == 0 {
		return 0
	}
	return w.times[(w.next+len(w.times)-1)%len(w.times)]
}

// limiter is a user's rate limiter: writes and gets each have their own
// window.
type limiter struct {
	groups   *registry // where admitted calls go
	refusals *refusals // where refusals are posted for the gateway
	cfg      *Config
	user     string
	writes   window
	reads    window
	pass     passivator
}

func newLimiter(n *Node) actor.Actor {
	return &limiter{groups: n.groups, refusals: &n.refusals, cfg: &n.cfg, writes: newWindow(n.cfg.WriteLimit), reads: newWindow(n.cfg.ReadLimit)}
}

func (l *limiter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *activate:
		l.user = m.name
		l.pass.init(ctx, m)
	case *call:
		l.gate(m)
	case *admission:
		l.admit(m)
	case *idleCheck:
		// Once both windows have slid past the last admitted call the state
		// is the same as a new limiter's, so stopping loses nothing.
		now := l.cfg.Clock.Mono()
		if now-max(l.writes.newest(), l.reads.newest()) >= int64(l.cfg.LimitWindow) {
			l.pass.begin()
		}
	case *passivate:
		l.refusals.forget(l.user)
		l.pass.stop(nil)
	case *actor.Stopped:
		l.refusals.forget(l.user)
		l.pass.stopped()
	}
}

// gate admits or refuses a call and hands an admitted one to the group's
// actor, which answers the caller.
func (l *limiter) gate(c *call) {
	if err := l.check(c.get != nil); err != nil {
		c.reply(nil, err)
		return
	}
	l.groups.send(c.group, c)
}

// admit admits or refuses a call that goes on elsewhere.
func (l *limiter) admit(a *admission) { a.done(l.check(a.read)) }

// check records a call of the kind in its window, or refuses it.
func (l *limiter) check(read bool) error {
	w := &l.writes
	if read {
		w = &l.reads
	}
	if !w.admit(l.cfg.Clock.Mono(), l.cfg.LimitWindow) {
		// Until the window frees a place, the gateway refuses the user's
		// calls of this kind itself (Node.Refused).
		l.refusals.refuse(l.user, read, w.freed(l.cfg.LimitWindow))
		return rateLimited(l.cfg, l.user, read)
	}
	return nil
}
