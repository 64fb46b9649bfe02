package main

import (
	"os"
	"path/filepath"

	"github.com/wasmilter/wasmilter/retry"
)

// throwawayLedger opens an empty ledger in a temporary directory. check and
// replay use it: the configured one belongs to the running server (bbolt
// lets one process hold a file), and a replay must not write into it.
func throwawayLedger() (retry.Ledger, func(), error) {
	dir, err := os.MkdirTemp("", "wasmilter-ledger-")
	if err != nil {
		return nil, nil, err
	}
	l, err := retry.OpenBolt(filepath.Join(dir, "ledger.db"), retry.BoltOptions{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return l, func() { l.Close(); os.RemoveAll(dir) }, nil
}
