package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

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
	cfg    *Config
	writes window
	reads  window
	pass   passivator
}

func newLimiter(cfg *Config) actor.Actor {
	return &limiter{cfg: cfg, writes: newWindow(cfg.WriteLimit), reads: newWindow(cfg.ReadLimit)}
}

func (l *limiter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.pass.init(ctx, l.cfg.LimitWindow)
	case *messages.Acquire:
		l.pass.touch()
		now := l.cfg.Clock.Now().UnixNano()
		w := &l.writes
		if m.GetRead() {
			w = &l.reads
		}
		ctx.Respond(&messages.Acquired{Allowed: w.admit(now, l.cfg.LimitWindow)})
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
