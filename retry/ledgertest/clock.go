package ledgertest

import (
	"time"

	"github.com/wasmilter/wasmilter/internal/manualclock"
)

// Clock is a settable clock for ledgers under test: time moves only when the
// test says so, so tests never sleep and never depend on the machine's speed.
type Clock = manualclock.Clock

// Epoch is where a new Clock starts: a fixed time with nanoseconds, so a
// backend that keeps less precision than it promises is caught.
var Epoch = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

// NewClock returns a clock at Epoch.
func NewClock() *Clock { return manualclock.New(Epoch) }
