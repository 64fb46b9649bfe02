package ledgertest

import (
	"sync"
	"time"
)

// Clock is a settable clock for ledgers under test: time moves only when the
// test says so, so tests never sleep and never depend on the machine's speed.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Epoch is where a new Clock starts: a fixed time with nanoseconds, so a
// backend that keeps less precision than it promises is caught.
var Epoch = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

// NewClock returns a clock at Epoch.
func NewClock() *Clock { return &Clock{now: Epoch} }

// Now returns the clock's time. It is safe for concurrent use.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}
