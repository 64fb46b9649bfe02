package retry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmilter/wasmilter/internal/tmpfstest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Knobs of TestBoltDiskFull: a small file system, a filler file that frees
// room when deleted, and a bound on the deferrals it takes to fill the rest.
const (
	diskFullSize   = 2 << 20
	diskFullFiller = 512 << 10
	diskFullMax    = 20000
	diskFullAfter  = 50 // deferrals tried again once the disk is full
)

// TestBoltDiskFull: the ledger's file system fills up under a deferral
// storm. Defer must fail (so the pipeline's on_store_error applies), never
// acknowledge what it did not write, keep everything it acknowledged
// intact, and work again without a restart once space returns.
func TestBoltDiskFull(t *testing.T) {
	dir := tmpfstest.Mount(t, diskFullSize)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, diskFullFiller), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ledger.db")
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()

	// Fill the disk: four sessions defer at once, so batched commits fail
	// together too.
	acked, firstErr, tried := deferUntilFull(t, l, 0)
	if firstErr == nil {
		t.Fatalf("%d deferrals on a %d-byte file system and no error", tried, diskFullSize)
	}
	t.Logf("disk full after %d acknowledged deferrals (%d tried): %v", len(acked), tried, firstErr)

	// Still full. A deferral may yet fit in pages a failed commit left
	// free; what is acknowledged counts like any other, what fails fails.
	failed := 0
	for i := 0; i < diskFullAfter; i++ {
		n := 1_000_000 + i
		if _, err := l.Defer(ctx, fullDeferral(n)); err != nil {
			failed++
		} else {
			acked = append(acked, n)
		}
	}
	if failed == 0 {
		t.Fatalf("all %d deferrals after the first ENOSPC succeeded: the disk was not full", diskFullAfter)
	}
	t.Logf("then %d of %d more deferrals failed on the full disk", failed, diskFullAfter)
	// What was acknowledged is still there, through the same open ledger.
	checkAcked(t, l, acked)

	// Space returns: deferrals work again on the same open ledger.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var again []int
	for i := 0; i < 100; i++ {
		n := 2_000_000 + i
		if _, err := l.Defer(ctx, fullDeferral(n)); err != nil {
			t.Fatalf("deferral %d after space returned: %v", i, err)
		}
		again = append(again, n)
	}
	t.Logf("after freeing %d bytes: %d more deferrals acknowledged without a restart", diskFullFiller, len(again))

	// The file itself: reopened, consistent (bbolt's own check), and every
	// acknowledged record readable.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)
	l2, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatalf("reopening the ledger after the disk was full: %v", err)
	}
	defer l2.Close()
	checkAcked(t, l2, append(acked, again...))
	recs, err := l2.List(ctx, retry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(acked)+len(again) {
		t.Errorf("the file holds %d records, %d were acknowledged", len(recs), len(acked)+len(again))
	}
}

// deferUntilFull runs four sessions deferring new messages until one
// fails; it returns the numbers of those acknowledged, the first error and
// how many were tried.
func deferUntilFull(t *testing.T, l retry.Ledger, base int) ([]int, error, int) {
	t.Helper()
	const sessions = 4
	var mu sync.Mutex
	var acked []int
	var firstErr error
	var tried int
	var wg sync.WaitGroup
	for w := 0; w < sessions; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < diskFullMax; i += sessions {
				mu.Lock()
				stop := firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				_, err := l.Defer(context.Background(), fullDeferral(base+i))
				mu.Lock()
				tried++
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					acked = append(acked, base+i)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, firstErr, tried
}

func fullID(n int) stamp.Identity {
	var id stamp.Identity
	for i := range 8 {
		id[i] = byte(n >> (8 * i))
	}
	id[15] = 0xd1
	return id
}

// fullDeferral is deferral n: about 2 KiB, like a real message's.
func fullDeferral(n int) retry.Deferral {
	d := benchDeferral(fullID(n))
	d.Sender = fmt.Sprintf("sender-%d@example.org", n)
	d.Recipients = []string{fmt.Sprintf("rcpt-%d@example.net", n)}
	return d
}

// checkAcked reads every acknowledged deferral back.
func checkAcked(t *testing.T, l retry.Ledger, acked []int) {
	t.Helper()
	lost := 0
	for _, n := range acked {
		rec, err := l.Get(context.Background(), fullID(n))
		switch {
		case errors.Is(err, retry.ErrNotFound):
			lost++
		case err != nil:
			t.Fatalf("record %d: %v", n, err)
		case rec.State != retry.Deferred || rec.Attempts != 1 || rec.Sender != fullDeferral(n).Sender ||
			len(rec.Recipients) != 1 || rec.Recipients[0] != fullDeferral(n).Recipients[0]:
			t.Fatalf("record %d damaged: %+v", n, rec)
		}
	}
	if lost > 0 {
		t.Fatalf("lost %d of %d acknowledged deferrals", lost, len(acked))
	}
}

// checkFile runs bbolt's consistency check on the closed file.
func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open for check: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt check after the disk was full: %v", err)
	}
}
