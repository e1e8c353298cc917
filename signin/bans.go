package signin

import (
	"sync"
	"time"
)

// bans are the users whose sign-ins are refused until a time, after they
// flooded a node.
type bans struct {
	mu    sync.Mutex
	until map[string]time.Time
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
}
