package actors

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// refusals records, for each user over a limit, until when its writes and
// its gets are refused, so that such a call is refused where it enters the
// node, before it is decoded or reaches an actor: a user flooding the node
// costs it as little as a refusal can.
type refusals struct {
	n atomic.Int64 // users in m, so that a node refusing nobody looks nothing up
	m sync.Map     // user ID -> *refusal
}

type refusal struct {
	writes, reads atomic.Int64 // by the node's monotonic clock (Clock.Mono); 0: none
	// floodFrom is when the window of the refusals counted in flood began.
	floodFrom, flood atomic.Int64
}

// refused counts one more refusal of the user's calls at now, and tells
// cfg.Flood when they reach cfg.FloodRefusals within one limit window.
func (f *refusal) refused(cfg *Config, user string, now int64) {
	if cfg.Flood == nil {
		return
	}
	if from := f.floodFrom.Load(); now-from >= int64(cfg.LimitWindow) && f.floodFrom.CompareAndSwap(from, now) {
		f.flood.Store(0)
	}
	if f.flood.Add(1) == int64(cfg.FloodRefusals) {
		go cfg.Flood(user)
	}
}

func (r *refusals) until(user string) *refusal {
	if v, ok := r.m.Load(user); ok {
		return v.(*refusal)
	}
	v, loaded := r.m.LoadOrStore(user, &refusal{})
	if !loaded {
		r.n.Add(1)
	}
	return v.(*refusal)
}

// refuse records that the user's calls of the kind are refused until t.
func (r *refusals) refuse(user string, read bool, t int64) {
	if f := r.until(user); read {
		f.reads.Store(t)
	} else {
		f.writes.Store(t)
	}
}

// forget drops the user's record, once its limiter stopped.
func (r *refusals) forget(user string) {
	if _, ok := r.m.LoadAndDelete(user); ok {
		r.n.Add(-1)
	}
}

// Invalid counts a user's malformed request toward its flood, as a
// refusal: such requests never reach the rate limit, yet a client sending
// them without end costs the node as much. The user's record stays until
// its limiter stops, or for good if it never calls validly: one per user
// ID that sends a malformed request, which for end users is one each.
func (n *Node) Invalid(user string) {
	if n.cfg.Flood == nil {
		return
	}
	n.refusals.until(user).refused(&n.cfg, user, n.cfg.Clock.Mono())
}

// Refused reports ErrRateLimited when the user's calls of the kind (a get
// when read) are refused at this moment, and nil when they may be tried.
func (n *Node) Refused(user string, read bool) error {
	r := &n.refusals
	if r.n.Load() == 0 || user == "" {
		return nil
	}
	v, ok := r.m.Load(user)
	if !ok {
		return nil
	}
	f := v.(*refusal)
	until := f.writes.Load()
	if read {
		until = f.reads.Load()
	}
	now := n.cfg.Clock.Mono()
	if until == 0 || now >= until {
		return nil
	}
	f.refused(&n.cfg, user, now)
	return rateLimited(&n.cfg, user, read)
}

// rateLimited is the refusal of a user's call of the kind.
func rateLimited(cfg *Config, user string, read bool) error {
	limit, kind := cfg.WriteLimit, "writes"
	if read {
		limit, kind = cfg.ReadLimit, "gets"
	}
	return fmt.Errorf("%w: user %s made %d %s within %v", ErrRateLimited, user, limit, kind, cfg.LimitWindow)
}
