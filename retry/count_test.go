package retry

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmilter/wasmilter/stamp"
)

// TestBoltCountByState: the counts follow the records through their
// transitions, every state is present, and a closed ledger says so.
func TestBoltCountByState(t *testing.T) {
	b, err := OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, now := context.Background(), time.Now()
	ids := make([]stamp.Identity, 5)
	for i := range ids {
		ids[i] = stamp.Derive(stamp.Facts{Sender: fmt.Sprintf("s%d@example.org", i)})
		if _, err := b.Defer(ctx, Deferral{ID: ids[i], Attempt: Attempt{At: now, Reason: Reason{Code: 451}}}); err != nil {
			t.Fatal(err)
		}
	}
	mustOK := func(_ Record, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustOK(b.Pass(ctx, ids[0], Attempt{At: now}))
	mustOK(b.Hold(ctx, ids[1]))
	mustOK(b.Release(ctx, ids[2]))
	mustOK(b.Expire(ctx, ids[3], now, Reason{Code: 550}))
	counts, err := b.CountByState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[State]int{Deferred: 1, Passed: 1, Held: 1, Released: 1, Expired: 1}
	if len(counts) != len(States) {
		t.Errorf("counts %v: want every state", counts)
	}
	for s, n := range want {
		if counts[s] != n {
			t.Errorf("count of %s = %d, want %d (all: %v)", s, counts[s], n, counts)
		}
	}
	b.Close()
	if _, err := b.CountByState(ctx); err == nil {
		t.Error("a closed ledger counted")
	}
}

// BenchmarkBoltCountByState counts a ledger of 100,000 deferred records:
// what one scrape of wasmilter_ledger_records costs on a big ledger.
func BenchmarkBoltCountByState(b *testing.B) {
	l, err := OpenBolt(filepath.Join(b.TempDir(), "ledger.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 100_000
	now := time.Now()
	err = l.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			rec := Record{ID: stamp.Derive(stamp.Facts{Sender: fmt.Sprintf("s%d@example.org", i)}), State: Deferred,
				FirstSeen: now, LastSeen: now, Attempts: 1, UpdatedAt: now}
			if err := putRecord(tx, nil, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		counts, err := l.CountByState(ctx)
		if err != nil || counts[Deferred] != n {
			b.Fatalf("%v %v", counts, err)
		}
	}
}
