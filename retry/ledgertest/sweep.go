package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// sweeper is a sweeper on the test's ledger and clock with a small page,
// so that every test crosses several pages.
func (h *harness) sweeper(batch int) *retry.Sweeper {
	return &retry.Sweeper{Ledger: h.l, Clock: h.clock.Now, Batch: batch}
}

// sortedIDs returns n new identities in identity order, so a test can lay
// records out along the sweep's walk.
func (h *harness) sortedIDs(n int) []stamp.Identity {
	ids := make([]stamp.Identity, n)
	for i := range ids {
		ids[i] = h.newID()
	}
	slices.SortFunc(ids, func(a, b stamp.Identity) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// visitLog records a sweep's visits; it is safe for concurrent sweeps.
type visitLog struct {
	mu   sync.Mutex
	ids  []stamp.Identity
	recs map[stamp.Identity]retry.Record
}

func (v *visitLog) add(rec retry.Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.recs == nil {
		v.recs = map[stamp.Identity]retry.Record{}
	}
	v.ids = append(v.ids, rec.ID)
	v.recs[rec.ID] = rec
}

// checkOrder fails unless the visits are in strictly increasing identity
// order, which also means no identity was visited twice.
func (h *harness) checkOrder(ids []stamp.Identity) {
	h.Helper()
	for i := 1; i < len(ids); i++ {
		if bytes.Compare(ids[i-1][:], ids[i][:]) >= 0 {
			h.Errorf("visit %d (%s) does not come after visit %d (%s): a record was visited twice or out of order", i, ids[i], i-1, ids[i-1])
		}
	}
}

// listSpy counts the sweeper's List calls, to check it reads through the
// state index in bounded pages.
type listSpy struct {
	retry.Ledger
	mu    sync.Mutex
	calls []retry.Filter
}

func (s *listSpy) List(ctx context.Context, f retry.Filter) ([]retry.Record, error) {
	s.mu.Lock()
	s.calls = append(s.calls, f)
	s.mu.Unlock()
	return s.Ledger.List(ctx, f)
}

// testSweepVisits: one sweep visits every deferred and held record once, in
// identity order, with the record as stored and the clock's time, and no
// other record; it pages through the index of each swept state only.
func testSweepVisits(h *harness) {
	if st, err := h.sweeper(3).Sweep(h.ctx, func(context.Context, time.Time, retry.Record) error {
		return errors.New("visited an empty ledger")
	}); err != nil || st.Visited != 0 {
		h.Errorf("sweep of an empty ledger: %+v, %v", st, err)
	}
	var want []stamp.Identity
	for range 4 {
		for _, s := range retry.States {
			id := h.inState(s)
			if s == retry.Deferred || s == retry.Held {
				want = append(want, id)
			}
		}
	}
	slices.SortFunc(want, func(a, b stamp.Identity) int { return bytes.Compare(a[:], b[:]) })
	now := h.clock.Advance(time.Hour)

	spy := &listSpy{Ledger: h.l}
	sw := &retry.Sweeper{Ledger: spy, Clock: h.clock.Now, Batch: 3}
	var log visitLog
	st, err := sw.Sweep(h.ctx, func(_ context.Context, at time.Time, rec retry.Record) error {
		if !at.Equal(now) {
			return fmt.Errorf("visit time %v, want the clock's %v", at, now)
		}
		log.add(rec)
		return nil
	})
	if err != nil {
		h.Fatalf("Sweep: %v", err)
	}
	if !slices.Equal(log.ids, want) {
		h.Errorf("visited\n %v\nwant every deferred and held record once, in identity order:\n %v", log.ids, want)
	}
	for _, id := range log.ids {
		h.sameRecord("the record a visit gets", h.mustGet(id), log.recs[id])
	}
	if st.Visited != len(want) || st.Failed != 0 || st.Skipped != 0 || !st.Started.Equal(now) || !st.Finished.Equal(now) {
		h.Errorf("stats %+v, want %d visited", st, len(want))
	}
	for _, f := range spy.calls {
		if (f.State != retry.Deferred && f.State != retry.Held) || f.Limit != 3 {
			h.Errorf("the sweeper listed %+v: want pages of 3 from the deferred or held index only", f)
		}
	}
}

// testSweepMove: a record that moves from one swept state to the other
// after its old state's page was read is listed by both walks and still
// visited once, in its new state.
func testSweepMove(h *harness) {
	s := h.sortedIDs(5)
	for i, st := range []retry.State{retry.Deferred, retry.Held, retry.Held, retry.Deferred, retry.Held} {
		h.bring(s[i], st)
	}
	// With pages of 2: deferred reads (s0, s3), held (s1, s2). While s2 is
	// visited s3 is held, so held's next page (s3, s4) lists s3 again.
	var log visitLog
	_, err := h.sweeper(2).Sweep(h.ctx, func(_ context.Context, _ time.Time, rec retry.Record) error {
		log.add(rec)
		if rec.ID == s[2] {
			_, err := h.l.Hold(h.ctx, s[3])
			return err
		}
		return nil
	})
	if err != nil {
		h.Fatalf("Sweep: %v", err)
	}
	if !slices.Equal(log.ids, s) {
		h.Errorf("visited\n %v\nwant each once\n %v", log.ids, s)
	}
	if got := log.recs[s[3]].State; got != retry.Held {
		h.Errorf("the moved record was visited as %s, want held (as it was at its visit)", got)
	}
}

// testSweepChanges: records deleted, passed, released, expired, held,
// deferred again or created while a sweep runs. The sweep visits what is
// in a swept state when its turn comes, as it is then, and nothing twice.
func testSweepChanges(h *harness) {
	s := h.sortedIDs(20)
	for i, id := range s {
		switch i % 4 {
		case 1:
			h.bring(id, retry.Held)
		case 3:
			h.bring(id, retry.Passed)
		default:
			h.bring(id, retry.Deferred)
		}
	}
	fresh := h.newID()
	change := func() error {
		now := h.clock.Advance(time.Minute)
		steps := []func() error{
			func() error { _, err := h.l.Expire(h.ctx, s[5], now, expiredReason); return err },   // held -> expired
			func() error { _, err := h.l.Release(h.ctx, s[6]); return err },                      // deferred -> released
			func() error { _, err := h.l.Pass(h.ctx, s[8], retry.Attempt{At: now}); return err }, // then purged
			func() error {
				_, err := h.l.Purge(h.ctx, retry.PurgeFilter{States: []retry.State{retry.Passed}, UpdatedBefore: now.Add(time.Hour)})
				return err
			},
			func() error { _, err := h.l.Defer(h.ctx, h.deferral(s[10], now, 2)); return err }, // one more attempt
			func() error { _, err := h.l.Hold(h.ctx, s[12]); return err },                      // deferred -> held
			func() error { _, err := h.l.Release(h.ctx, s[13]); return err },                   // held -> released
			func() error { _, err := h.l.Release(h.ctx, s[1]); return err },                    // in a page already read
			func() error { _, err := h.l.Defer(h.ctx, h.deferral(fresh, now, 1)); return err }, // created mid-sweep
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	}
	var log visitLog
	st, err := h.sweeper(3).Sweep(h.ctx, func(_ context.Context, _ time.Time, rec retry.Record) error {
		log.add(rec)
		if rec.ID == s[0] {
			return change()
		}
		return nil
	})
	if err != nil {
		h.Fatalf("Sweep: %v", err)
	}
	h.checkOrder(log.ids)

	var want, got []stamp.Identity
	for _, id := range s {
		rec, err := h.l.Get(h.ctx, id)
		if err == nil && (rec.State == retry.Deferred || rec.State == retry.Held) {
			want = append(want, id)
		}
	}
	for _, id := range log.ids {
		if id != fresh {
			got = append(got, id)
		}
	}
	if !slices.Equal(got, want) {
		h.Errorf("visited\n %v\nwant the records in a swept state at their turn\n %v", got, want)
	}
	if rec := log.recs[s[10]]; rec.Attempts != 2 {
		h.Errorf("a record deferred again before its turn was visited with %d attempts, want 2 (as stored then)", rec.Attempts)
	}
	if st.Skipped < 2 {
		h.Errorf("stats %+v: the released and expired records of the pages already read were not skipped", st)
	}
	if st.Visited != len(log.ids) {
		h.Errorf("stats say %d visits, the visit function saw %d", st.Visited, len(log.ids))
	}
	h.checkIndex()
}

// testSweepFailures: a failing visit does not stop the sweep, and its error
// comes back with the record's identity; a canceled context does stop it.
func testSweepFailures(h *harness) {
	var ids []stamp.Identity
	for range 20 {
		ids = append(ids, h.inState(retry.Deferred))
	}
	relayDown := errors.New("relay down")
	st, err := h.sweeper(4).Sweep(h.ctx, func(context.Context, time.Time, retry.Record) error { return relayDown })
	if st.Visited != len(ids) || st.Failed != len(ids) {
		h.Errorf("every visit failing: stats %+v, want all %d visited and failed", st, len(ids))
	}
	if !errors.Is(err, relayDown) || !strings.Contains(err.Error(), "20 of 20 visits failed") {
		h.Errorf("sweep error: %v", err)
	}
	if n := strings.Count(err.Error(), "relay down"); n == 0 || n > 10 {
		h.Errorf("sweep error repeats the visit error %d times; want it bounded", n)
	}

	n := 0
	st, err = h.sweeper(4).Sweep(h.ctx, func(_ context.Context, _ time.Time, rec retry.Record) error {
		n++
		if n%2 == 0 {
			return fmt.Errorf("visit %d: %w", n, relayDown)
		}
		return nil
	})
	if st.Visited != len(ids) || st.Failed != len(ids)/2 || !errors.Is(err, relayDown) {
		h.Errorf("half the visits failing: stats %+v, err %v", st, err)
	}

	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	n = 0
	st, err = h.sweeper(4).Sweep(ctx, func(context.Context, time.Time, retry.Record) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || st.Visited != 3 {
		h.Errorf("sweep canceled in its third visit: stats %+v, err %v; want 3 visits and context.Canceled", st, err)
	}
}

// testSweepRun: Run sweeps at once, then on every tick, reports each sweep,
// and stops with its context, stopping its ticker.
func testSweepRun(h *harness) {
	h.inState(retry.Deferred)
	h.inState(retry.Held)
	h.inState(retry.Passed)

	ticks := make(chan time.Time)
	var gotInterval time.Duration
	stopped := make(chan struct{})
	sw := h.sweeper(2)
	sw.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
		gotInterval = d
		return ticks, func() { close(stopped) }
	}
	type report struct {
		st  retry.SweepStats
		err error
	}
	reports := make(chan report)
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- sw.Run(ctx, time.Minute, func(context.Context, time.Time, retry.Record) error { return nil },
			func(st retry.SweepStats, err error) { reports <- report{st, err} })
	}()

	// Each receive waits for a sweep to finish; each send on ticks waits
	// for Run to be back at its ticker: no sleeping, no timing.
	if r := <-reports; r.err != nil || r.st.Visited != 2 {
		h.Errorf("first sweep (at start, before any tick): %+v, %v; want 2 visits", r.st, r.err)
	}
	h.inState(retry.Deferred)
	ticks <- h.clock.Now()
	if r := <-reports; r.err != nil || r.st.Visited != 3 {
		h.Errorf("sweep on the tick: %+v, %v; want 3 visits", r.st, r.err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		h.Errorf("Run returned %v, want context.Canceled", err)
	}
	<-stopped // Run stopped its ticker; a missing stop hangs the test here
	if gotInterval != time.Minute {
		h.Errorf("ticker made with interval %s, want 1m", gotInterval)
	}
	if err := sw.Run(h.ctx, 0, nil, nil); !errors.Is(err, retry.ErrInvalid) {
		h.Errorf("Run with no interval: %v, want ErrInvalid", err)
	}
}

// testTwoSweepers: two nodes sweep the same store at the same time, each
// visit claiming step 1, "sending" and completing it; one node's relay
// fails some sends temporarily. Sweeps are repeated until nothing is left
// to send: every record then has exactly one notice, sent exactly once.
func testTwoSweepers(h *harness) {
	var ids []stamp.Identity
	for i := range 24 {
		ids = append(ids, h.inState([]retry.State{retry.Deferred, retry.Held}[i%2]))
	}
	var mu sync.Mutex
	sends := map[stamp.Identity]int{}
	tries := map[stamp.Identity]int{}
	visit := func(node string) retry.Visit {
		return func(ctx context.Context, now time.Time, rec retry.Record) error {
			_, won, err := h.l.ClaimNotice(ctx, rec.ID, 1, node, lease, now)
			if err != nil || !won {
				return err
			}
			mu.Lock()
			tries[rec.ID]++
			fail := node == nodeB && tries[rec.ID] == 1 && rec.ID[0]%3 == 0
			if !fail {
				sends[rec.ID]++
			}
			mu.Unlock()
			if fail {
				_, err := h.l.ReleaseNotice(ctx, rec.ID, 1, node, now, time.Time{}, "421 4.3.0 relay busy")
				return err
			}
			_, err = h.l.CompleteNotice(ctx, rec.ID, 1, node, now, sent)
			return err
		}
	}
	for round := 0; round < 4; round++ {
		var wg sync.WaitGroup
		for _, node := range []string{nodeA, nodeB} {
			wg.Go(func() {
				if _, err := h.sweeper(5).Sweep(h.ctx, visit(node)); err != nil {
					h.Errorf("%s, round %d: %v", node, round, err)
				}
			})
		}
		wg.Wait()
	}
	for _, id := range ids {
		rec := h.mustGet(id)
		if sends[id] != 1 || len(rec.Notices) != 1 {
			h.Errorf("%s: sent %d times, %d notices recorded; want exactly 1", id, sends[id], len(rec.Notices))
		}
		if e, _ := rec.OutboxEntry(1); e.Status != retry.NoticeSent {
			h.Errorf("%s: outbox %+v, want sent", id, e)
		}
	}
}
