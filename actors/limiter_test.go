package actors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/actors"
	"github.com/tallyhq/tally/journal/journaltest"
	"github.com/tallyhq/tally/messages"
)

func TestRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	n := e.node
	ctx := context.Background()
	write := func() error {
		_, err := n.Change(ctx, "alice", "g", increase("k", 1))
		return err
	}
	read := func() error {
		_, err := n.Get(ctx, "alice", &messages.GetRequest{GroupId: "g"})
		return err
	}
	for i := range 20 {
		if err := write(); err != nil {
			t.Fatalf("write %d = %v", i+1, err)
		}
	}
	if err := write(); !errors.Is(err, actors.ErrRateLimited) {
		t.Fatalf("21st write = %v, want ErrRateLimited", err)
	}
	if code := actors.Code(write()); code != messages.Code_CODE_RATE_LIMITED {
		t.Errorf("code of a refused write = %v, want 2996", code)
	}
	for i := range 20 {
		if err := read(); err != nil {
			t.Fatalf("get %d while writes are limited = %v", i+1, err)
		}
	}
	if err := read(); !errors.Is(err, actors.ErrRateLimited) {
		t.Errorf("21st get = %v, want ErrRateLimited", err)
	}
	if _, err := n.Change(ctx, "bob", "g", increase("k", 1)); err != nil {
		t.Errorf("another user's write = %v", err)
	}
	if _, err := n.Change(ctx, "", "g", increase("k", 1)); err != nil {
		t.Errorf("admin write = %v", err)
	}
	if v := get(t, n, "g")["k"]; v != 22 {
		t.Errorf("k = %d, want 22: refused writes must change nothing", v)
	}

	// Refused calls do not count: after 4 s of refusals, the window slides
	// past the 20 admitted writes and 20 more pass.
	e.clock.Advance(4 * time.Second)
	if err := write(); !errors.Is(err, actors.ErrRateLimited) {
		t.Fatalf("write at 4 s = %v, want ErrRateLimited", err)
	}
	e.clock.Advance(time.Second)
	for i := range 20 {
		if err := write(); err != nil {
			t.Fatalf("write %d after the window slid = %v", i+1, err)
		}
	}
	if err := write(); !errors.Is(err, actors.ErrRateLimited) {
		t.Errorf("21st write of the new window = %v, want ErrRateLimited", err)
	}
}

// TestIdleLimiterPassivates: a user's rate limit whose windows have slid
// past its last call is dropped, and a new one starts empty.
func TestIdleLimiterPassivates(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.LimitWindow = 100 * time.Millisecond })
	ctx := context.Background()
	for range 20 {
		if _, err := e.node.Change(ctx, "erin", "g", increase("k", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !e.node.LimiterActive("erin") {
		t.Fatal("no rate limit of erin after 20 calls")
	}
	e.clock.Advance(100 * time.Millisecond)
	journaltest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if e.node.LimiterActive("erin") {
			return errors.New("erin's rate limit is still held")
		}
		return nil
	})
	if _, err := e.node.Change(ctx, "erin", "g", increase("k", 1)); err != nil {
		t.Errorf("first call after passivation = %v", err)
	}
}

// TestWallClockSteps sets the wall clock back an hour and forward an hour
// while a user is at the limit and a request ID is remembered: the rate
// limit and the dedupe window follow the time that passed, not the wall
// clock.
func TestWallClockSteps(t *testing.T) {
	e := newEnv(t, nil)
	n := e.node
	ctx := context.Background()
	write := func(user string, c *messages.Change) (*messages.Change, error) { return n.Change(ctx, user, "g", c) }
	for i := range 20 {
		if _, err := write("alice", increase("k", 1)); err != nil {
			t.Fatalf("write %d = %v", i+1, err)
		}
	}
	retried := increase("k", 1)
	retried.RequestId = "r1"
	if _, err := write("bob", retried); err != nil {
		t.Fatal(err)
	}
	if _, err := write("alice", increase("k", 1)); !errors.Is(err, actors.ErrRateLimited) {
		t.Fatalf("21st write = %v, want ErrRateLimited", err)
	}

	e.clock.SetWall(-time.Hour)
	e.clock.Advance(5 * time.Second)
	if err := n.Refused("alice", false); err != nil {
		t.Errorf("Refused 5 s after the limit, the wall clock set back an hour = %v, want nil", err)
	}
	if _, err := write("alice", increase("k", 1)); err != nil {
		t.Errorf("write 5 s after the limit, the wall clock set back an hour = %v, want nil", err)
	}

	e.clock.SetWall(2 * time.Hour) // an hour ahead of where it began
	if got, err := write("bob", retried); err != nil || got.GetValue() != 21 {
		t.Errorf("retry within the window, the wall clock set forward = %v, %v; want its first reply (21)", got, err)
	}
	e.clock.Advance(actors.DefaultConfig().DedupeWindow)
	if got, err := write("bob", retried); err != nil || got.GetValue() != 23 {
		t.Errorf("write after the window = %v, %v; want it applied again (23)", got, err)
	}
}

// TestRateLimitConcurrent: 64 calls of one user at once, from 64
// goroutines, are admitted exactly up to the limit, and only the admitted
// ones change the group.
func TestRateLimitConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	const callers = 64
	errs := make(chan error, callers)
	var start sync.WaitGroup
	start.Add(1)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			start.Wait()
			_, err := e.node.Change(ctx, "carol", "g", increase("k", 1))
			errs <- err
		})
	}
	start.Done()
	wg.Wait()
	close(errs)
	admitted, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			admitted++
		case errors.Is(err, actors.ErrRateLimited):
			refused++
		default:
			t.Errorf("call = %v", err)
		}
	}
	if admitted != 20 || refused != callers-20 {
		t.Errorf("admitted %d, refused %d; want 20 and %d", admitted, refused, callers-20)
	}
	if v := get(t, e.node, "g")["k"]; v != 20 {
		t.Errorf("k = %d, want 20", v)
	}
}
