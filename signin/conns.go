package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConns is the Conns of an embedded server.
func ServerConns(s *server.Server) Conns { return serverConns{s} }

type serverConns struct{ s *server.Server }

func (c serverConns) Alive(id uint64) bool  { return c.s.GetClient(id) != nil }
func (c serverConns) Close(id uint64) error { return c.s.DisconnectClientByID(id) }

// Kick closes a connection of another server: on an external NATS
// server, the system account's $SYS.REQ.SERVER.<server>.KICK of client
// id. It returns ErrNoConnection (wrapped) when the server has no such
// connection, and another error when it could not be asked.
type Kick func(ctx context.Context, server string, id uint64) error

// ErrNoConnection is a Kick's error for a connection that ended already.
var ErrNoConnection = errors.New("no such connection")

const (
	// closeTimeout bounds the closing of one connection.
	closeTimeout = 2 * time.Second
	// closers bounds the connections being closed at once.
	closers = 8
)

// connRef names a connection: its server's ID and its client ID there.
// Client IDs are the server's own, and a server that restarts has another
// ID, so a connRef never names another connection.
type connRef struct {
	server string
	id     uint64
}

// closer closes the connections the service let in.
type closer interface {
	// gone reports whether the connection is known to have ended.
	gone(c connRef) bool
	// close closes it; ErrNoConnection when it ended already.
	close(ctx context.Context, c connRef) error
}

// serverCloser closes connections through the embedded server, which
// knows which of them are still there.
type serverCloser struct{ conns Conns }

func (s serverCloser) gone(c connRef) bool { return !s.conns.Alive(c.id) }

func (s serverCloser) close(_ context.Context, c connRef) error {
	if err := s.conns.Close(c.id); err != nil {
		if !s.conns.Alive(c.id) {
			return fmt.Errorf("%w: %w", ErrNoConnection, err)
		}
		return err
	}
	return nil
}

// kickCloser closes connections of an external server with its kick. The
// server cannot be asked about each one cheaply, so a connection that
// ended stays known until its grant expires (and the server would close
// it); closing it fails harmlessly.
type kickCloser struct{ kick Kick }

func (kickCloser) gone(connRef) bool { return false }

func (k kickCloser) close(ctx context.Context, c connRef) error { return k.kick(ctx, c.server, c.id) }

// entry is what the registry keeps of a connection.
type entry struct {
	expires time.Time // the grant's: the server closes the connection then
	seq     uint64    // order of sign-in
}

// registry knows the connections the service let in, by user, until they
// are gone or their grants expire, and closes them: on the embedded server
// through the server, on an external one with the system account's kick.
// A user has at most max of them. Where the server says which are still
// there (embedded), a sign-in beyond max is refused; where it does not
// (external), her oldest connection is closed to make room, for a
// connection that ended would otherwise count until its grant expires,
// and a user who reconnected max times would be locked out that long.
type registry struct {
	closer closer // nil: nothing is known
	max    int
	evict  bool // close the oldest at max rather than refuse
	log    *limitedLog
	sem    chan struct{} // bounds the closes under way

	mu     sync.Mutex
	seq    uint64
	byUser map[string]map[connRef]entry
}

func newRegistry(c closer, max int, evict bool, log *limitedLog) *registry {
	return &registry{closer: c, max: max, evict: evict, log: log,
		sem: make(chan struct{}, closers), byUser: map[string]map[connRef]entry{}}
}

// add knows connection c of user, whose grant expires then, unless the
// user's connections already number max and (where it evicts) the oldest
// could not be closed.
func (r *registry) add(ctx context.Context, user string, c connRef, expires, now time.Time) error {
	if r.closer == nil {
		return nil
	}
	r.mu.Lock()
	conns := r.byUser[user]
	if conns == nil {
		conns = map[connRef]entry{}
		r.byUser[user] = conns
	}
	if len(conns) >= r.max {
		r.dropEnded(conns, now)
	}
	if len(conns) < r.max {
		r.add1(conns, c, expires)
		r.mu.Unlock()
		return nil
	}
	if !r.evict {
		n := len(conns)
		r.mu.Unlock()
		return fmt.Errorf("%w: %d connected, at most %d", ErrTooManyConnections, n, r.max)
	}
	// Close the oldest, out of the map while it closes: another sign-in
	// of the user meanwhile takes another one.
	var oldest connRef
	var first entry
	for o, e := range conns {
		if first.seq == 0 || e.seq < first.seq {
			oldest, first = o, e
		}
	}
	delete(conns, oldest)
	r.add1(conns, c, expires)
	r.mu.Unlock()
	err := r.close1(ctx, oldest)
	if err == nil || errors.Is(err, ErrNoConnection) {
		if err == nil {
			r.log.log(slog.LevelInfo, "closed a user's oldest connection: she has at most the connections of MaxConnsPerUser",
				slog.String("user", user), slog.Int("max", r.max))
		}
		return nil
	}
	r.mu.Lock()
	r.restore(user, oldest, first)
	r.mu.Unlock()
	r.forget(user, c)
	return fmt.Errorf("%w: %d connected, at most %d, and the oldest could not be closed: %w", ErrTooManyConnections, r.max, r.max, err)
}

func (r *registry) add1(conns map[connRef]entry, c connRef, expires time.Time) {
	r.seq++
	conns[c] = entry{expires: expires, seq: r.seq}
}

// restore puts back a connection that could not be closed.
func (r *registry) restore(user string, c connRef, e entry) {
	conns := r.byUser[user]
	if conns == nil {
		conns = map[connRef]entry{}
		r.byUser[user] = conns
	}
	conns[c] = e
}

// dropEnded drops the connections that are gone or whose grants expired.
func (r *registry) dropEnded(conns map[connRef]entry, now time.Time) {
	for c, e := range conns {
		if !now.Before(e.expires) || r.closer.gone(c) {
			delete(conns, c)
		}
	}
}

// forget drops a connection that was refused after all.
func (r *registry) forget(user string, c connRef) {
	if r.closer == nil || user == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if conns := r.byUser[user]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(r.byUser, user)
		}
	}
}

// close closes every known connection of user, several at once, each
// within closeTimeout, and returns how many it closed. A connection that
// could not be closed stays known, for the next close to try again; one
// that ended already is forgotten.
func (r *registry) close(ctx context.Context, user string) int {
	if r.closer == nil {
		return 0
	}
	r.mu.Lock()
	var todo []connRef
	for c := range r.byUser[user] {
		todo = append(todo, c)
	}
	r.mu.Unlock()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed int
	)
	for _, c := range todo {
		wg.Go(func() {
			err := r.close1(ctx, c)
			if err != nil && !errors.Is(err, ErrNoConnection) {
				r.log.log(slog.LevelWarn, "could not close a user's connection: closing it again at her next disconnection",
					slog.String("user", user), slog.String("server", c.server), slog.Uint64("client", c.id), slog.Any("error", err))
				return
			}
			r.forget(user, c)
			if err == nil {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return closed
}

// close1 closes one connection within closeTimeout, once one of the
// closers is free.
func (r *registry) close1(ctx context.Context, c connRef) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	return r.closer.close(ctx, c)
}

// sweep drops the connections that are gone or whose grants expired, and
// users left with none.
func (r *registry) sweep(now time.Time) {
	if r.closer == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for user, conns := range r.byUser {
		r.dropEnded(conns, now)
		if len(conns) == 0 {
			delete(r.byUser, user)
		}
	}
}

// count is how many connections of user are known.
func (r *registry) count(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byUser[user])
}

// userOf returns the user of connection c, or "" when the registry does
// not know it.
func (r *registry) userOf(c connRef) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for user, conns := range r.byUser {
		if _, ok := conns[c]; ok {
			return user
		}
	}
	return ""
}
