package signin

import (
	"context"
	"sync"
	"time"
)

// Kick closes a connection of another server: on an external NATS
// server, the system account's $SYS.REQ.SERVER.<server>.KICK of client
// id. It returns an error when the connection was not closed (it was gone
// already, say).
type Kick func(ctx context.Context, server string, id uint64) error

// remoteConn is a connection the service let in on an external server.
type remoteConn struct {
	server string
	id     uint64
}

// remote knows, by user, the connections the service let in on an
// external server, until their grants expire: the server closes a
// connection then, and it cannot be asked about each one cheaply, so a
// connection that ended earlier stays known until then (closing it again
// fails harmlessly). Client IDs are the server's own, and a server that
// restarts has another ID, so no entry ever names another connection.
type remote struct {
	mu     sync.Mutex
	byUser map[string]map[remoteConn]time.Time // -> the grant's expiry
}

func newRemote() *remote { return &remote{byUser: map[string]map[remoteConn]time.Time{}} }

func (r *remote) add(user string, c remoteConn, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	conns := r.byUser[user]
	if conns == nil {
		conns = map[remoteConn]time.Time{}
		r.byUser[user] = conns
	}
	conns[c] = expires
}

// forget drops a connection that was refused after all.
func (r *remote) forget(user string, c remoteConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if conns := r.byUser[user]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(r.byUser, user)
		}
	}
}

// close kicks every known connection of user and returns how many were
// closed.
func (r *remote) close(ctx context.Context, kick Kick, user string) int {
	r.mu.Lock()
	conns := r.byUser[user]
	delete(r.byUser, user)
	r.mu.Unlock()
	n := 0
	for c := range conns {
		if kick(ctx, c.server, c.id) == nil {
			n++
		}
	}
	return n
}

// sweep drops the connections whose grants expired by now.
func (r *remote) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for user, conns := range r.byUser {
		for c, expires := range conns {
			if !now.Before(expires) {
				delete(conns, c)
			}
		}
		if len(conns) == 0 {
			delete(r.byUser, user)
		}
	}
}
