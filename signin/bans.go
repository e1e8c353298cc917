package signin

import (
	"sync"
	"time"
)

// bans are the users whose sign-ins are refused until a time, after they
// flooded a node, and the counts of the sign-ins refused at their cap.
type bans struct {
	mu    sync.Mutex
	until map[string]time.Time
	atCap map[string]capCount
}

// capCount counts a user's sign-ins refused at her connection cap within
// a window of capWindow that began at from.
type capCount struct {
	from time.Time
	n    int
}

// A user whose sign-ins are refused at her connection cap capFlood times
// within capWindow is banned: each refusal is still a signature verified
// and an answer signed, and 2,400 of them a second slowed every other
// user's sign-in tenfold.
const (
	capFlood  = 100
	capWindow = 5 * time.Second
)

// refusedAtCap counts a sign-in of user refused at her cap at now, and
// reports whether it is her capFlood-th within one capWindow.
func (b *bans) refusedAtCap(user string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.atCap[user]
	if now.Sub(c.from) >= capWindow || now.Before(c.from) {
		c = capCount{from: now}
	}
	c.n++
	b.atCap[user] = c
	return c.n == capFlood
}

// ban refuses user's sign-ins until t, or until the later ban it already
// has, which it returns.
func (b *bans) ban(user string, t time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.until[user]; ok && cur.After(t) {
		return cur
	}
	b.until[user] = t
	return t
}

// banned reports whether user is banned at now, and until when.
func (b *bans) banned(user string, now time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[user]
	if ok && !now.Before(t) {
		delete(b.until, user)
		return time.Time{}, false
	}
	return t, ok
}

// sweep drops the bans that ended.
func (b *bans) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for u, t := range b.until {
		if !now.Before(t) {
			delete(b.until, u)
		}
	}
	for u, c := range b.atCap {
		if now.Sub(c.from) >= capWindow {
			delete(b.atCap, u)
		}
	}
}
