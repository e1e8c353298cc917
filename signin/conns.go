package signin

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConns is the Conns of an embedded server.
func ServerConns(s *server.Server) Conns { return serverConns{s} }

type serverConns struct{ s *server.Server }

func (c serverConns) Alive(id uint64) bool  { return c.s.GetClient(id) != nil }
func (c serverConns) Close(id uint64) error { return c.s.DisconnectClientByID(id) }

// tracker knows the connections the service let in, by user, on its own
// server: the request names the connection by its client ID, and the
// server says which IDs are still connected.
type tracker struct {
	conns Conns // nil: nothing is tracked

	mu     sync.Mutex
	byUser map[string]map[uint64]struct{}
}

func newTracker(conns Conns) *tracker {
	return &tracker{conns: conns, byUser: map[string]map[uint64]struct{}{}}
}

// add counts connection id of user, unless the user's connections that
// are still there already number max.
func (t *tracker) add(user string, id uint64, max int) error {
	if t.conns == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := t.byUser[user]
	if ids == nil {
		ids = map[uint64]struct{}{}
		t.byUser[user] = ids
	}
	if len(ids) >= max {
		for c := range ids {
			if !t.conns.Alive(c) {
				delete(ids, c)
			}
		}
	}
	if len(ids) >= max {
		return fmt.Errorf("%w: %d connected, at most %d", ErrTooManyConnections, len(ids), max)
	}
	ids[id] = struct{}{}
	return nil
}

// forget drops a connection that was refused after all.
func (t *tracker) forget(user string, id uint64) {
	if t.conns == nil || user == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ids := t.byUser[user]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(t.byUser, user)
		}
	}
}

// close closes every connection of user and returns how many there were.
func (t *tracker) close(user string) int {
	t.mu.Lock()
	ids := t.byUser[user]
	delete(t.byUser, user)
	t.mu.Unlock()
	n := 0
	for id := range ids {
		if t.conns.Close(id) == nil {
			n++
		}
	}
	return n
}

// sweep drops the connections that are gone, and users left with none.
func (t *tracker) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for user, ids := range t.byUser {
		for id := range ids {
			if !t.conns.Alive(id) {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(t.byUser, user)
		}
	}
}
