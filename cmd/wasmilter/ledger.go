package main

import (
	"os"
	"path/filepath"
	"time"

	"github.com/wasmilter/wasmilter/retry"
)

// throwawayLedger opens an empty ledger in a temporary directory. check and
// replay use it: the configured one belongs to the running server (bbolt
// lets one process hold a file), and a replay must not write into it.
//
// clock is the ledger's clock (nil: time.Now); replay -at passes its
// simulated one, so that every time in a record is on the same clock.
func throwawayLedger(clock func() time.Time) (retry.Ledger, func(), error) {
	dir, err := os.MkdirTemp("", "wasmilter-ledger-")
	if err != nil {
		return nil, nil, err
	}
	l, err := retry.OpenBolt(filepath.Join(dir, "ledger.db"), retry.BoltOptions{Clock: clock})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return l, func() { l.Close(); os.RemoveAll(dir) }, nil
}
