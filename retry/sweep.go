package retry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// SweptStates are the states the sweeper visits: the messages still waiting
// for a decision, whose senders may be owed a delay notice.
var SweptStates = []State{Deferred, Held}

// DefaultSweepBatch is how many identities Sweeper reads per List call of
// each swept state when Sweeper.Batch is zero.
const DefaultSweepBatch = 256

// maxSweepErrors is how many visit failures one sweep reports in full; the
// rest are counted. A broken relay fails every visit, and ten thousand
// copies of one error help nobody.
const maxSweepErrors = 8

// Visit is what the sweeper calls for each record: normally, ask the delay
// policy about rec and, if it says so, ClaimNotice, send, CompleteNotice. now
// is the sweeper's clock read just before the call (not when the sweep
// began), so a lease taken late in a long sweep still lasts its full length.
// An error is counted and reported; the sweep goes on with the next record.
type Visit func(ctx context.Context, now time.Time, rec Record) error

// Sweeper walks the records in the swept states (deferred and held) and
// hands each to a Visit. It reads through the state index in bounded pages
// (Ledger.List), so it never scans the whole ledger and never holds a store
// transaction open while a Visit runs: a visit that talks SMTP for seconds
// blocks no deferral.
//
// Records change while a sweep runs, and a sweep is built for it: both
// states are walked together in identity order, so each identity is
// visited at most once per sweep even if it moves from one swept state to
// the other; each record is read again just before its visit, so a record
// that was deleted, passed, released or expired since its page was read is
// skipped, and the visit sees its current notices and outbox. So a record
// that stays deferred or held for the whole sweep is visited exactly once;
// one that changes during the sweep at most once: it is missed only if it
// entered a swept state after the walk of that state had read past its
// identity (created, or moved from the other swept state), and the next
// sweep has it.
//
// A Sweeper holds no state between sweeps; sweeps may run concurrently, on
// one node or several, because what a visit does is decided by atomic
// ledger operations (ClaimNotice), not by the sweep.
type Sweeper struct {
	Ledger Ledger
	// States are the states walked; nil means SweptStates. A notifier that
	// also sends "no longer delayed" notices adds Passed.
	States []State
	// Clock is read for each visit; nil means time.Now.
	Clock func() time.Time
	// Batch is how many identities are read per page; 0 means
	// DefaultSweepBatch.
	Batch int
	// NewTicker makes Run's ticker; nil means time.NewTicker. Tests hand
	// in a channel they send on.
	NewTicker func(d time.Duration) (ticks <-chan time.Time, stop func())
}

// SweepStats is the account of one sweep.
type SweepStats struct {
	Started  time.Time
	Visited  int // Visit called
	Failed   int // Visit returned an error
	Skipped  int // listed, but gone or no longer swept when its turn came
	Finished time.Time
}

func (s *Sweeper) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// stateWalk is one swept state's page of identities, read ahead.
type stateWalk struct {
	state State
	ids   []stamp.Identity
	after stamp.Identity // List cursor: the last identity read
	done  bool           // the last page was short: nothing after it
}

// head returns the walk's next identity, reading a page when needed.
func (w *stateWalk) head(ctx context.Context, l Ledger, batch int) (stamp.Identity, bool, error) {
	if len(w.ids) == 0 && !w.done {
		page, err := l.List(ctx, Filter{State: w.state, Limit: batch, After: w.after})
		if err != nil {
			return stamp.Identity{}, false, fmt.Errorf("list %s after %s: %w", w.state, w.after, err)
		}
		// Keep identities only: the record is read again before its visit,
		// and a page of records could hold megabytes of headers.
		for _, rec := range page {
			w.ids = append(w.ids, rec.ID)
		}
		w.done = len(page) < batch
		if len(page) > 0 {
			w.after = page[len(page)-1].ID
		}
	}
	if len(w.ids) == 0 {
		return stamp.Identity{}, false, nil
	}
	return w.ids[0], true, nil
}

// Sweep visits every record in the swept states once, in identity order.
// It stops early only when ctx ends or the ledger fails; failed visits are
// counted in the stats and reported in the error (the first few in full),
// after every record had its turn.
func (s *Sweeper) Sweep(ctx context.Context, visit Visit) (SweepStats, error) {
	st := SweepStats{Started: s.now()}
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	states := s.states()
	walks := make([]*stateWalk, len(states))
	for i, state := range states {
		walks[i] = &stateWalk{state: state}
	}
	var failures []error
	var last stamp.Identity
	started := false
	for {
		if err := ctx.Err(); err != nil {
			return s.finish(st, failures, fmt.Errorf("sweep stopped: %w", err))
		}
		// The next identity is the smallest head; an identity listed by
		// both walks (it moved between the states after one page was read)
		// is taken from both, so it is visited once.
		var next stamp.Identity
		found := false
		for _, w := range walks {
			id, ok, err := w.head(ctx, s.Ledger, batch)
			if err != nil {
				return s.finish(st, failures, fmt.Errorf("sweep: %w", err))
			}
			if ok && (!found || bytes.Compare(id[:], next[:]) < 0) {
				next, found = id, true
			}
		}
		if !found {
			return s.finish(st, failures, nil)
		}
		for _, w := range walks {
			if len(w.ids) > 0 && w.ids[0] == next {
				w.ids = w.ids[1:]
			}
		}
		// The walks only move forward, so anything not after the last
		// identity visited was visited already (it came back through the
		// other state's page).
		if started && bytes.Compare(next[:], last[:]) <= 0 {
			continue
		}
		last, started = next, true

		rec, err := s.Ledger.Get(ctx, next)
		switch {
		case errors.Is(err, ErrNotFound):
			st.Skipped++ // purged since its page was read
			continue
		case err != nil:
			return s.finish(st, failures, fmt.Errorf("sweep: %w", err))
		case !slices.Contains(states, rec.State):
			st.Skipped++ // moved to a state not swept since its page was read
			continue
		}
		st.Visited++
		if err := visit(ctx, s.now(), rec); err != nil {
			st.Failed++
			if len(failures) < maxSweepErrors {
				failures = append(failures, fmt.Errorf("visit %s: %w", rec.ID, err))
			}
		}
	}
}

// finish stamps the stats and puts the sweep's error together: why it
// stopped, if it did, then the visits that failed.
func (s *Sweeper) finish(st SweepStats, failures []error, stopped error) (SweepStats, error) {
	st.Finished = s.now()
	var errs []error
	if stopped != nil {
		errs = append(errs, stopped)
	}
	if st.Failed > 0 {
		more := ""
		if st.Failed > len(failures) {
			more = fmt.Sprintf(" (the first %d follow)", len(failures))
		}
		errs = append(errs, fmt.Errorf("sweep: %d of %d visits failed%s: %w", st.Failed, st.Visited, more, errors.Join(failures...)))
	}
	return st, errors.Join(errs...)
}

func (s *Sweeper) states() []State {
	if s.States == nil {
		return SweptStates
	}
	return s.States
}

// Run sweeps at once, then every interval until ctx ends, and returns
// ctx's error. Each sweep's stats and error go to report (nil: dropped),
// which is where the caller logs them; a failed sweep does not stop Run,
// since the next tick may find the store or the relay back. Sweeps never
// overlap: ticks that come while a sweep runs are dropped by the ticker,
// so a slow sweep delays the next rather than queueing a backlog.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration, visit Visit, report func(SweepStats, error)) error {
	if interval <= 0 {
		return fmt.Errorf("sweeper: %w: interval %s is not positive", ErrInvalid, interval)
	}
	newTicker := s.NewTicker
	if newTicker == nil {
		newTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	ticks, stop := newTicker(interval)
	defer stop()
	for {
		st, err := s.Sweep(ctx, visit)
		if report != nil {
			report(st, err) // a sweep cut short by ctx is reported too: say how far it got
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
	}
}
