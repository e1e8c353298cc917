// Package actorstest holds test doubles for the actors' dependencies.
package actorstest

import (
	"sync"
	"time"
)

// FakeClock is a clock that moves only when told, so that tests can slide
// rate-limit and dedupe windows without sleeping. Its wall clock can also
// be set back or forward alone, as an operator or NTP would.
type FakeClock struct {
	mu   sync.Mutex
	now  time.Time
	mono int64
}

// NewFakeClock returns a clock stopped at a fixed instant.
func NewFakeClock() *FakeClock { return &FakeClock{now: time.Unix(1_700_000_000, 0), mono: 1} }

// Now returns the clock's wall time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Mono returns the clock's monotonic time.
func (c *FakeClock) Mono() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.mono += int64(d)
}

// SetWall moves the wall clock alone by d, forward or back, leaving the
// monotonic clock where it is.
func (c *FakeClock) SetWall(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
