package retry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/retry/ledgertest"
	"github.com/wasmilter/wasmilter/stamp"
)

// TestFirstSeenLookupGivesTheStampTimeBack is the incident in one test: a
// message deferred once gets the same first-seen time on its retry, even
// after the server restarted in between.
func TestFirstSeenLookupGivesTheStampTimeBack(t *testing.T) {
	ctx := context.Background()
	clock := ledgertest.NewClock()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := retry.OpenBolt(path, retry.BoltOptions{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	id := stamp.Derive(stamp.Facts{Sender: "a@example.org", Recipients: []string{"b@example.net"}})

	stampTime, err := retry.FirstSeenLookup{Ledger: l}.FirstSeen(ctx, id, clock.Now())
	if err != nil || !stampTime.Equal(clock.Now()) {
		t.Fatalf("unknown message: %v, %v; want now", stampTime, err)
	}
	stampTime = stampTime.Truncate(time.Second) // as the pipeline writes it into the stamp
	_, err = l.Defer(ctx, retry.Deferral{ID: id, FirstSeen: stampTime,
		Attempt: retry.Attempt{At: clock.Now(), Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = retry.OpenBolt(path, retry.BoltOptions{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	retried, err := retry.FirstSeenLookup{Ledger: l}.FirstSeen(ctx, id, clock.Advance(15*time.Minute))
	if err != nil || !retried.Equal(stampTime) {
		t.Errorf("retry after restart: first seen %v, %v; want the stamp's %v", retried, err, stampTime)
	}
}
