package signin

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKick is a Kick that records what it was asked and answers from
// its table: ErrNoConnection for a connection not in it.
type fakeKick struct {
	mu     sync.Mutex
	live   map[connRef]error // -> the kick's error while there
	kicked []connRef
}

func (f *fakeKick) kick(ctx context.Context, server string, id uint64) error {
	c := connRef{server, id}
	f.mu.Lock()
	f.kicked = append(f.kicked, c)
	err, ok := f.live[c]
	if ok && err == nil {
		delete(f.live, c)
	}
	f.mu.Unlock()
	switch {
	case !ok:
		return ErrNoConnection
	case errors.Is(err, context.DeadlineExceeded):
		<-ctx.Done() // a server that does not answer
		return ctx.Err()
	}
	return err
}

func (f *fakeKick) set(c connRef, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[c] = err
}

func (f *fakeKick) takeKicked() []connRef {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.kicked
	f.kicked = nil
	return k
}

// TestRemote checks the connections known on an external server: a user
// has at most max of them, her oldest closed to make room, and a sign-in
// refused when it cannot be; every one of many is closed when she is
// disconnected, each failure logged and kept for the next time, those that
// ended forgotten, and those whose grants expired swept.
func TestRemote(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var logged strings.Builder
	var logMu sync.Mutex
	log := newLimitedLog(slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logged.Write(p)
	}), nil)), 1000, time.Hour)
	f := &fakeKick{live: map[connRef]error{}}
	const max = 40
	r := newRegistry(kickCloser{f.kick}, max, true, log)
	ctx := context.Background()
	var alice []connRef
	for i := range 3 * max {
		c := connRef{"S1", uint64(i + 1)}
		f.set(c, nil)
		alice = append(alice, c)
		if err := r.add(ctx, "alice", c, now.Add(time.Hour), now); err != nil {
			t.Fatalf("alice's sign-in %d: %v", i, err)
		}
	}
	if n := r.count("alice"); n != max {
		t.Errorf("alice's connections known after %d sign-ins: %d, want %d", 3*max, n, max)
	}
	kicked := f.takeKicked()
	if len(kicked) != 2*max || kicked[0] != alice[0] || kicked[2*max-1] != alice[2*max-1] {
		t.Errorf("kicked %v, want alice's %d oldest connections, oldest first", kicked, 2*max)
	}
	if !strings.Contains(logged.String(), "closed a user's oldest connection") {
		t.Errorf("log %q, want the closing of alice's oldest connection", logged.String())
	}

	// The oldest cannot be closed: the sign-in is refused, and both
	// connections keep their places.
	f.set(alice[2*max], errors.New("permissions violation"))
	extra := connRef{"S1", 1000}
	if err := r.add(ctx, "alice", extra, now.Add(time.Hour), now); !errors.Is(err, ErrTooManyConnections) {
		t.Errorf("a sign-in beyond the cap whose oldest cannot be closed: %v, want %v", err, ErrTooManyConnections)
	}
	if n := r.count("alice"); n != max {
		t.Errorf("alice's connections known after a refused sign-in: %d, want %d", n, max)
	}
	f.takeKicked()

	// Disconnected: each is kicked, a failure (one refused, one that gets
	// no answer) does not stop the others and is kept, one that ended is
	// forgotten.
	f.set(alice[2*max+1], context.DeadlineExceeded)
	f.mu.Lock()
	delete(f.live, alice[2*max+2])
	f.mu.Unlock()
	if n := r.close(ctx, "alice"); n != max-3 {
		t.Errorf("alice's connections closed: %d, want %d", n, max-3)
	}
	if k := f.takeKicked(); len(k) != max {
		t.Errorf("kicked %d connections, want all %d of alice's", len(k), max)
	}
	if n := r.count("alice"); n != 2 {
		t.Errorf("alice's connections known after a close: %d, want the 2 that could not be closed", n)
	}
	if !strings.Contains(logged.String(), "could not close a user's connection") {
		t.Errorf("log %q, want the connections that could not be closed", logged.String())
	}
	f.set(alice[2*max], nil)
	f.set(alice[2*max+1], nil)
	if n := r.close(ctx, "alice"); n != 2 || r.count("alice") != 0 {
		t.Errorf("alice's connections closed again: %d (%d left), want the 2 that failed before, none left", n, r.count("alice"))
	}

	// A refused sign-in is forgotten; a grant that expired is swept.
	r.add(ctx, "bob", connRef{"S1", 2000}, now.Add(time.Minute), now)
	r.add(ctx, "bob", connRef{"S2", 2000}, now.Add(time.Hour), now)
	r.forget("bob", connRef{"S2", 2000})
	r.sweep(now.Add(time.Minute))
	if n := r.count("bob"); n != 0 {
		t.Errorf("bob's connections known after his grant expired: %d, want none", n)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }
