package retry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/retry/ledgertest"
	"github.com/wasmilter/wasmilter/stamp"
)

// boltBackend gives each test its own ledger file on the real disk.
func boltBackend(t *testing.T) ledgertest.Opener {
	path := filepath.Join(t.TempDir(), "state", "ledger.db") // "state" tests parent creation
	return func(clock *ledgertest.Clock) retry.Ledger {
		l, err := retry.OpenBolt(path, retry.BoltOptions{Clock: clock.Now})
		if err != nil {
			t.Fatalf("OpenBolt: %v", err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return l
	}
}

func TestBoltLedger(t *testing.T) { ledgertest.Run(t, boltBackend) }

func TestBoltSecondOpenIsRefusedWithAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	first, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// flock is per open file, so a second open in this process meets the
	// lock exactly as a second process would.
	second, err := retry.OpenBolt(path, retry.BoltOptions{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second OpenBolt on a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "another process holds the file lock") || !strings.Contains(err.Error(), "admin API") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestBoltRefusesFilesItCannotRead(t *testing.T) {
	dir := t.TempDir()
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	cases := map[string]func(path string) error{
		"garbage": func(path string) error { return os.WriteFile(path, garbage, 0o600) },
		"short":   func(path string) error { return os.WriteFile(path, []byte("not a database"), 0o600) },
		"damaged meta pages": func(path string) error {
			if err := makeLedger(path); err != nil {
				return err
			}
			return overwrite(path, 0, make([]byte, 8192)) // both meta pages (4 KiB each)
		},
		"another application's bbolt file": func(path string) error {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
		},
		"a newer schema": func(path string) error {
			if err := makeLedger(path); err != nil {
				return err
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99")) })
		},
		"a directory": func(path string) error { return os.Mkdir(path, 0o700) },
	}
	for name, prepare := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := prepare(path); err != nil {
				t.Fatal(err)
			}
			l, err := retry.OpenBolt(path, retry.BoltOptions{LockTimeout: 50 * time.Millisecond})
			if err == nil {
				l.Close()
				t.Fatal("OpenBolt accepted it")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
			t.Logf("%s: %v", name, err)
		})
	}
}

func TestBoltReportsADamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	id := stamp.Derive(stamp.Facts{Sender: "a@example.org"})
	if err := makeLedger(path); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Put(id[:], []byte(`{"v":7}`)) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Get(context.Background(), id); err == nil || errors.Is(err, retry.ErrNotFound) || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("Get of a record from a future version: %v", err)
	}
	if _, err := l.Defer(context.Background(), retry.Deferral{ID: id, Attempt: retry.Attempt{At: time.Now(), Reason: retry.Reason{Code: 451}}}); err == nil {
		t.Error("Defer overwrote a record it cannot read")
	}
}

func makeLedger(path string) error {
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		return err
	}
	return l.Close()
}

func overwrite(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchID makes distinct identities cheaply and deterministically.
func benchID(n uint64) stamp.Identity {
	var id stamp.Identity
	for i := range 8 {
		id[i] = byte(n >> (8 * i))
	}
	id[15] = 1
	return id
}

// benchDeferral is a realistic deferral: a header of about 2 KiB.
func benchDeferral(id stamp.Identity) retry.Deferral {
	var hs []retry.Header
	for i := range 20 {
		hs = append(hs, retry.Header{Name: fmt.Sprintf("X-Header-%02d", i), Value: strings.Repeat("v", 90)})
	}
	return retry.Deferral{
		ID:      id,
		Attempt: retry.Attempt{At: time.Now(), QueueID: "4XyZ1q2w3e", ClientIP: "192.0.2.7", Helo: "mx.example.org", Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}},
		Sender:  "alice@example.org", Recipients: []string{"bob@example.net"}, Headers: hs,
	}
}

func openBench(b *testing.B, opts retry.BoltOptions) *retry.Bolt {
	l, err := retry.OpenBolt(filepath.Join(b.TempDir(), "ledger.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkDefer measures durable deferrals (fsync on, on the test's
// disk) from 1, 8 and 64 sessions at once, each a new identity, with
// several batch delays; "unbatched" (a batch of one) is the baseline of
// one commit, and so two fdatasyncs, per deferral.
func BenchmarkDefer(b *testing.B) {
	variants := []struct {
		name string
		opts retry.BoltOptions
	}{
		{"unbatched", retry.BoltOptions{BatchSize: 1}},
		{"batch=500µs", retry.BoltOptions{BatchDelay: 500 * time.Microsecond}},
		{"batch=1ms", retry.BoltOptions{BatchDelay: time.Millisecond}},
		{"batch=2ms", retry.BoltOptions{BatchDelay: 2 * time.Millisecond}},
		{"batch=10ms", retry.BoltOptions{BatchDelay: 10 * time.Millisecond}},
	}
	for _, sessions := range []int{1, 8, 64} {
		for _, v := range variants {
			b.Run(fmt.Sprintf("sessions=%d/%s", sessions, v.name), func(b *testing.B) {
				l := openBench(b, v.opts)
				var next atomic.Uint64
				b.ResetTimer()
				err := spread(b.N, sessions, func() error {
					_, err := l.Defer(context.Background(), benchDeferral(benchID(next.Add(1))))
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deferrals/s")
			})
		}
	}
}

// spread makes calls calls to call from exactly workers goroutines.
func spread(calls, workers int, call func() error) error {
	var left atomic.Int64
	left.Store(int64(calls))
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := call(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// BenchmarkGet measures lookups of existing records (the stamp's first-seen
// time, on every message the ledger knows) from parallel sessions.
func BenchmarkGet(b *testing.B) {
	l := openBench(b, retry.BoltOptions{})
	const records = 10_000
	var next atomic.Uint64
	err := spread(records, 64, func() error {
		_, err := l.Defer(context.Background(), benchDeferral(benchID(next.Add(1))))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			i++
			if _, err := l.Get(context.Background(), benchID(i%records+1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkSweep measures one sweep over 10,000 records, a quarter of them
// held, each with a ~2 KiB header, with a visit that does nothing: the
// sweeper's own cost (index pages, and one fresh read per record).
func BenchmarkSweep(b *testing.B) {
	l := openBench(b, retry.BoltOptions{})
	const records = 10_000
	var next atomic.Uint64
	err := spread(records, 64, func() error {
		n := next.Add(1)
		if _, err := l.Defer(context.Background(), benchDeferral(benchID(n))); err != nil {
			return err
		}
		if n%4 == 0 {
			_, err := l.Hold(context.Background(), benchID(n))
			return err
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	sw := &retry.Sweeper{Ledger: l}
	b.ResetTimer()
	for b.Loop() {
		st, err := sw.Sweep(context.Background(), func(context.Context, time.Time, retry.Record) error { return nil })
		if err != nil || st.Visited != records {
			b.Fatalf("sweep: %+v, %v", st, err)
		}
	}
	b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
}
