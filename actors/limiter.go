package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/tallyhq/tally/messages"
)

const kindLimiter = "limiter"

// window is a sliding-window log: the times of the last admitted calls, at
// most limit of them, in a ring.
type window struct {
	times []int64 // unix nanos, ring of len limit
	next  int     // where the next admitted call goes: the oldest entry
	n     int     // entries in use
}

func newWindow(limit int) window { return window{times: make([]int64, limit)} }

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
	cfg     *Config
	user    string
	cluster *cluster.Cluster
	writes  window
	reads   window
	pass    passivator
}

func newLimiter(cfg *Config) actor.Actor {
	return &limiter{cfg: cfg, writes: newWindow(cfg.WriteLimit), reads: newWindow(cfg.ReadLimit)}
}

func (l *limiter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		l.user, l.cluster = m.Identity.GetIdentity(), m.Cluster
		l.pass.init(ctx, l.cfg.LimitWindow)
	case *messages.Gate:
		l.pass.touch()
		l.gate(ctx, m)
	case *idleCheck:
		if !l.pass.idle() {
			return
		}
		// Once both windows have slid past the last admitted call the state
		// is the same as a new limiter's, so passivating loses nothing.
		now := l.cfg.Clock.Now().UnixNano()
		last := max(l.writes.newest(), l.reads.newest())
		if now-last >= int64(l.cfg.LimitWindow) {
			l.pass.begin(ctx)
			return
		}
		l.pass.touch()
		l.pass.idle()
	case *passivate:
		if l.pass.marker(m) {
			l.pass.stop()
		}
	}
}

// gate admits or refuses a call and hands an admitted one to the group's
// actor, which answers the caller directly.
func (l *limiter) gate(ctx actor.Context, m *messages.Gate) {
	read := m.GetGet() != nil
	w, limit, kind := &l.writes, l.cfg.WriteLimit, "writes"
	if read {
		w, limit, kind = &l.reads, l.cfg.ReadLimit, "gets"
	}
	if !w.admit(l.cfg.Clock.Now().UnixNano(), l.cfg.LimitWindow) {
		err := fmt.Errorf("%w: user %s made %d %s within %v", ErrRateLimited, l.user, limit, kind, l.cfg.LimitWindow)
		ctx.Respond(replyError(err))
		return
	}
	pid := l.groupPID(ctx, m.GetGroupId())
	if pid == nil {
		ctx.Respond(&messages.Acquired{})
		return
	}
	var call any = m.GetChange()
	if read {
		call = m.GetGet()
	}
	// Should the group stop between this check and the delivery, the
	// caller gets a dead letter and resends the Gate, which counts the call
	// a second time: a rare over-count, never an under-count.
	ctx.RequestWithCustomSender(pid, call, ctx.Sender())
}

// groupPID is the group's activation if this node knows a live one.
func (l *limiter) groupPID(ctx actor.Context, group string) *actor.PID {
	if l.cluster == nil {
		return nil
	}
	pid, ok := l.cluster.PidCache.Get(group, kindGroup)
	if !ok {
		return nil
	}
	if pid.GetAddress() == ctx.ActorSystem().Address() {
		if _, live := ctx.ActorSystem().ProcessRegistry.GetLocal(pid.GetId()); !live {
			return nil // passivating
		}
	}
	return pid
}
