package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/redistest"
	"github.com/wasmilter/wasmilter/retry"
)

// TestRedisCountByState: the counts come from the state indexes under the
// ledger's own prefix (another prefix's records are not counted), and a
// closed ledger says so.
func TestRedisCountByState(t *testing.T) {
	srv := redistest.Start(t)
	ctx, now := context.Background(), time.Now()
	other := openRedis(t, srv, retry.RedisOptions{Prefix: "other:"})
	if _, err := other.Defer(ctx, testDeferral(testID(99), now)); err != nil {
		t.Fatal(err)
	}
	l, err := retry.OpenRedis(ctx, srv.URL(), retry.RedisOptions{Prefix: "mine:"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Defer(ctx, testDeferral(testID(i), now)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Hold(ctx, testID(0)); err != nil {
		t.Fatal(err)
	}
	counts, err := l.CountByState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[retry.State]int{retry.Deferred: 2, retry.Held: 1, retry.Passed: 0, retry.Released: 0, retry.Expired: 0}
	if len(counts) != len(want) {
		t.Errorf("counts %v: want every state", counts)
	}
	for s, n := range want {
		if counts[s] != n {
			t.Errorf("count of %s = %d, want %d (all: %v)", s, counts[s], n, counts)
		}
	}
	l.Close()
	if _, err := l.CountByState(ctx); err == nil {
		t.Error("a closed ledger counted")
	}
}
