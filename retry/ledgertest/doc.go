// Package ledgertest is the conformance suite every retry.Ledger backend
// runs: the state machine, errors, bounds, listing, purging, concurrency,
// persistence across a close and reopen, the notice outbox (claims raced by
// two nodes, lease takeover, crashes before completion) and the Sweeper
// over the backend. A backend passes when Run
// passes; no backend has tests of these behaviours of its own.
//
//	func TestLedger(t *testing.T) {
//		ledgertest.Run(t, func(t *testing.T) ledgertest.Opener {
//			path := filepath.Join(t.TempDir(), "ledger.db")
//			return func(clock *ledgertest.Clock) retry.Ledger {
//				l, err := retry.OpenBolt(path, retry.BoltOptions{Clock: clock.Now})
//				...
//			}
//		})
//	}
package ledgertest
