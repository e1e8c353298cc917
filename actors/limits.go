package actors

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// window is a sliding-window log: the times of the last admitted calls, at
// most limit of them, in a ring.
type window struct {
	times []int64 // by the node's monotonic clock (Clock.Mono), ring of len limit
	next  int     // where the next admitted call goes: the oldest entry
	n     int     // entries in use
}

func newWindow(limit int) window { return window{times: make([]int64, limit)} }

// full reports whether the window admits no call at now: limit calls were
// admitted within the span before it.
func (w *window) full(now int64, span time.Duration) bool {
	return w.n == len(w.times) && w.times[w.next] > now-int64(span)
}

// admit admits a call at now if fewer than limit calls were admitted within
// the span before it. A refused call is not recorded, so it does not count.
func (w *window) admit(now int64, span time.Duration) bool {
	if w.full(now, span) {
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

// limits holds every user's rate limit: writes and gets each have a
// window. A call is admitted or refused where it enters the node, on the
// caller's goroutine, under its user's shard lock: no actor, no message,
// no goroutine between a call and its group. A user's record goes once
// both windows have slid past its last call and it has no flood to count,
// so that it is the same as a new one.
type limits struct {
	cfg    *Config
	seed   maphash.Seed
	shards [64]limitShard
	stop   chan struct{}
	done   chan struct{}
}

type limitShard struct {
	mu    sync.Mutex
	users map[string]*userLimit
}

type userLimit struct {
	writes, reads window
	// floodFrom is when the window of the refusals counted in flood began.
	floodFrom, flood int64
}

func newLimits(cfg *Config) *limits {
	l := &limits{cfg: cfg, seed: maphash.MakeSeed(), stop: make(chan struct{}), done: make(chan struct{})}
	for i := range l.shards {
		l.shards[i].users = map[string]*userLimit{}
	}
	go l.sweep(min(max(cfg.LimitWindow/2, time.Millisecond), time.Second))
	return l
}

func (l *limits) shard(user string) *limitShard {
	return &l.shards[maphash.String(l.seed, user)%uint64(len(l.shards))]
}

// of returns the user's record, made when missing; the shard is locked.
func (s *limitShard) of(l *limits, user string) *userLimit {
	u := s.users[user]
	if u == nil {
		u = &userLimit{writes: newWindow(l.cfg.WriteLimit), reads: newWindow(l.cfg.ReadLimit)}
		s.users[user] = u
	}
	return u
}

// admit records a call of the kind (a get when read) in the user's window,
// or refuses it with ErrRateLimited.
func (l *limits) admit(user string, read bool) error {
	now := l.cfg.Clock.Mono()
	s := l.shard(user)
	s.mu.Lock()
	u := s.of(l, user)
	w := &u.writes
	if read {
		w = &u.reads
	}
	ok := w.admit(now, l.cfg.LimitWindow)
	flooded := !ok && u.refused(l.cfg, now)
	s.mu.Unlock()
	return l.refusal(user, read, ok, flooded)
}

// refused reports ErrRateLimited when the user's calls of the kind are
// refused at this moment, and nil when they may be tried, recording
// nothing else than the refusal: the gateway asks before it decodes a
// call, so that a user over its limit costs no decoding.
func (l *limits) refused(user string, read bool) error {
	now := l.cfg.Clock.Mono()
	s := l.shard(user)
	s.mu.Lock()
	u := s.users[user]
	if u == nil {
		s.mu.Unlock()
		return nil
	}
	w := &u.writes
	if read {
		w = &u.reads
	}
	full := w.full(now, l.cfg.LimitWindow)
	flooded := full && u.refused(l.cfg, now)
	s.mu.Unlock()
	return l.refusal(user, read, !full, flooded)
}

// invalid counts a user's malformed request toward its flood.
func (l *limits) invalid(user string) {
	now := l.cfg.Clock.Mono()
	s := l.shard(user)
	s.mu.Lock()
	flooded := s.of(l, user).refused(l.cfg, now)
	s.mu.Unlock()
	l.refusal(user, false, true, flooded)
}

// refusal is the outcome of a check, after the shard's lock is released.
func (l *limits) refusal(user string, read, ok, flooded bool) error {
	if flooded {
		go l.cfg.Flood(user)
	}
	if ok {
		return nil
	}
	return rateLimited(l.cfg, user, read)
}

// refused counts one more refusal of the user's calls at now, and reports
// whether they just reached cfg.FloodRefusals within one limit window.
func (u *userLimit) refused(cfg *Config, now int64) bool {
	if cfg.Flood == nil {
		return false
	}
	if now-u.floodFrom >= int64(cfg.LimitWindow) {
		u.floodFrom, u.flood = now, 0
	}
	u.flood++
	return u.flood == int64(cfg.FloodRefusals)
}

// idle reports whether the record is the same as a new one at now.
func (u *userLimit) idle(cfg *Config, now int64) bool {
	span := int64(cfg.LimitWindow)
	return now-max(u.writes.newest(), u.reads.newest()) >= span && (u.flood == 0 || now-u.floodFrom >= span)
}

// sweep drops idle records every tick until close.
func (l *limits) sweep(tick time.Duration) {
	defer close(l.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		now := l.cfg.Clock.Mono()
		for i := range l.shards {
			s := &l.shards[i]
			s.mu.Lock()
			for user, u := range s.users {
				if u.idle(l.cfg, now) {
					delete(s.users, user)
				}
			}
			s.mu.Unlock()
		}
	}
}

func (l *limits) close() {
	close(l.stop)
	<-l.done
}

// count returns the users with a record.
func (l *limits) count() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.users)
		s.mu.Unlock()
	}
	return n
}

// known reports whether the user has a record.
func (l *limits) known(user string) bool {
	s := l.shard(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user] != nil
}

// Invalid counts a user's request that was refused as malformed toward its
// flood, as a refusal: such requests never reach the rate limit, yet a
// client sending them without end costs the node as much. The user's
// record stays until its windows and its flood count are empty.
func (n *Node) Invalid(user string) {
	if n.cfg.Flood == nil {
		return
	}
	n.limits.invalid(user)
}

// Refused reports ErrRateLimited when the user's calls of the kind (a get
// when read) are refused at this moment, and nil when they may be tried.
func (n *Node) Refused(user string, read bool) error {
	if user == "" {
		return nil
	}
	return n.limits.refused(user, read)
}

// rateLimited is the refusal of a user's call of the kind.
func rateLimited(cfg *Config, user string, read bool) error {
	limit, kind := cfg.WriteLimit, "writes"
	if read {
		limit, kind = cfg.ReadLimit, "gets"
	}
	return fmt.Errorf("%w: user %s made %d %s within %v", ErrRateLimited, user, limit, kind, cfg.LimitWindow)
}
