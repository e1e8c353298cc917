package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/actors"
)

// TestPassivationLosesNoMessage makes groups passivate (and users' rate
// limits sweep) after a millisecond of quiet while calls keep arriving: every call must still
// be answered, none with a timeout, and every increase counted once.
func TestPassivationLosesNoMessage(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) {
		c.Clock = actors.DefaultConfig().Clock
		c.PassivateAfter = time.Millisecond
		c.LimitWindow = time.Millisecond
		c.WriteLimit, c.ReadLimit = 1_000_000, 1_000_000
	})
	const workers, rounds, groups = 4, 10, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				for g := range groups {
					user := fmt.Sprintf("u%d", (w+r+g)%5)
					if _, err := e.node.Change(context.Background(), user, fmt.Sprintf("g%d", g), increase("n", 1)); err != nil {
						t.Errorf("increase = %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	reloads := 0
	for g := range groups {
		name := fmt.Sprintf("g%d", g)
		if v := get(t, e.node, name)["n"]; v != workers*rounds {
			t.Errorf("%s: n = %d, want %d", name, v, workers*rounds)
		}
		reloads += e.journal.Loads(name) - 1
	}
	if reloads == 0 {
		t.Errorf("no group passivated: the test proves nothing")
	}
	t.Logf("%d reactivations of %d groups", reloads, groups)
}

// TestSnapshotsLoseNoWrite: with actors stopping after a millisecond and
// leaving snapshots, concurrent increases from several callers still all
// count exactly once, and the groups are read from the journal once.
func TestSnapshotsLoseNoWrite(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) {
		c.ActorIdle, c.PassivateAfter = time.Millisecond, time.Hour
	})
	const workers, rounds, groups = 4, 20, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				for g := range groups {
					if _, err := e.node.Change(context.Background(), "", fmt.Sprintf("g%d", g), increase("n", 1)); err != nil {
						t.Errorf("increase = %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for g := range groups {
		name := fmt.Sprintf("g%d", g)
		if v := get(t, e.node, name)["n"]; v != workers*rounds {
			t.Errorf("%s: n = %d, want %d", name, v, workers*rounds)
		}
		if loads := e.journal.Loads(name); loads != 1 {
			t.Errorf("%s loaded %d times, want 1: reactivations start from snapshots", name, loads)
		}
	}
}
