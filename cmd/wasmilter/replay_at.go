package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
)

// Time-travel replay: `replay -at +0 -at +10m -at +5h MSG.eml` plays the
// message's attempts on a simulated clock through the real chain, a
// temporary ledger and the real delay notifier, whose notices are kept
// instead of sent. It shows what a sender's MTA retrying over hours or days
// would meet: the verdicts, that the stamp stays the same, when the sender
// is told and when the message is given up.

// offsetList is the repeatable -at flag. The values are kept as given and
// checked together after parsing, so a bad one gets a message that names
// it and, for order, its predecessor.
type offsetList []string

func (l *offsetList) String() string     { return strings.Join(*l, ",") }
func (l *offsetList) Set(v string) error { *l = append(*l, v); return nil }

// timeTravel is a checked -at run: the simulated start and the attempts'
// offsets from it, in order.
type timeTravel struct {
	start   time.Time
	offsets []time.Duration
	verbose bool
}

// timeTravel checks -at, -start and -v; nil without -at (a plain replay).
func (f *replayFlags) timeTravel() (*timeTravel, error) {
	if len(f.at) == 0 {
		if f.start != "" {
			return nil, errors.New("-start sets the simulated clock of -at: give at least one -at OFFSET")
		}
		return nil, nil
	}
	t := &timeTravel{start: time.Now().UTC().Truncate(time.Second), verbose: f.verbose}
	if f.start != "" {
		start, err := time.Parse(time.RFC3339, f.start)
		if err != nil {
			return nil, fmt.Errorf("-start %q: not an RFC 3339 time such as 2026-11-20T10:00:00Z", f.start)
		}
		t.start = start.UTC()
	}
	for i, s := range f.at {
		d, err := parseOffset(s)
		if err != nil {
			return nil, err
		}
		if i > 0 && d < t.offsets[i-1] {
			return nil, fmt.Errorf("-at %s comes after -at %s: the attempts are played in order, so the offsets must not decrease", s, f.at[i-1])
		}
		t.offsets = append(t.offsets, d)
	}
	return t, nil
}

// parseOffset reads an offset from the simulated start: a duration as the
// config writes them ("10m", "5h", "2d", "1d12h"), with an optional
// leading "+".
func parseOffset(s string) (time.Duration, error) {
	var d config.Duration
	if err := d.UnmarshalText([]byte(strings.TrimPrefix(s, "+"))); err != nil || d.Duration < 0 {
		return 0, fmt.Errorf("-at %q: not an offset from the start (use e.g. +0, +10m, +5h, +2d, +1d12h)", s)
	}
	return d.Duration, nil
}

// noticeRecorder is the notifier's Sender in a replay: it keeps what would
// have been submitted to the relay, and accepts it, so the ledger records
// the notice as sent just as after a real 250.
type noticeRecorder struct {
	mu      sync.Mutex
	notices []recordedNotice
}

type recordedNotice struct {
	to  string
	msg []byte
}

func (r *noticeRecorder) Submit(_ context.Context, to string, msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, recordedNotice{to: to, msg: append([]byte(nil), msg...)})
	return nil
}

func (r *noticeRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.notices)
}

// since returns the notices recorded after the first n.
func (r *noticeRecorder) since(n int) []recordedNotice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedNotice(nil), r.notices[n:]...)
}

// player plays the steps of a time-travel replay on one server, built once:
// the ledger, the plugins' pools and the notifier's rate counters live
// across the steps as they would in a running server.
type player struct {
	travel  *timeTravel
	clock   *manualclock.Clock // the simulated clock: pipeline, plugins, delay hook, sweeper
	sent    *noticeRecorder
	srv     *server.Server
	ledger  retry.Ledger
	flags   *replayFlags
	msg     *replayMessage
	out     *stepWriter
	firstAt stampSeen // the first attempt's stamp, for comparing
}

// stepOutcome is what one -at step came to.
type stepOutcome struct {
	at       time.Duration
	now      time.Time
	notices  []recordedNotice
	sweepErr error
	attempt  *attemptResult
	record   retry.Record
	recorded bool // the ledger has a record of the message
}

// run builds the server on the simulated clock and plays every step.
func (t *timeTravel) run(cfg *config.Config, log *slog.Logger, f *replayFlags, m *replayMessage, w io.Writer) error {
	clock := manualclock.New(t.start)
	ledger, closeLedger, err := throwawayLedger(clock.Now)
	if err != nil {
		return err
	}
	defer closeLedger()
	sent := &noticeRecorder{}
	srv, err := server.Build(context.Background(), cfg, server.Options{Logger: log, Ledger: ledger,
		Clock: clock.Now, NoticeSender: sent})
	if err != nil {
		return err
	}
	defer srv.Release()
	p := &player{travel: t, clock: clock, sent: sent, srv: srv, ledger: ledger, flags: f, msg: m,
		out: newStepWriter(w, t, m)}
	p.out.intro(m, t.start)
	var last stepOutcome
	passedAt := time.Duration(-1)
	for _, at := range t.offsets {
		if last, err = p.step(context.Background(), at); err != nil {
			return fmt.Errorf("at %s: %w", formatOffset(at), err)
		}
		p.out.step(last, &p.firstAt)
		if passedAt < 0 && last.recorded && last.record.State == retry.Passed {
			passedAt = at
		}
	}
	p.out.result(last, t.start, passedAt, sent.count())
	return nil
}

// step sets the clock, lets the sweeper catch up, then plays one attempt.
func (p *player) step(ctx context.Context, at time.Duration) (stepOutcome, error) {
	o := stepOutcome{at: at, now: p.travel.start.Add(at)}
	p.clock.Set(o.now)
	before := p.sent.count()
	if err := p.sweep(ctx); err != nil {
		o.sweepErr = err
	}
	o.notices = p.sent.since(before)
	o.attempt = playAttempt(newReplaySession(p.srv, p.flags, p.msg), p.flags, p.msg)
	var err error
	o.record, o.recorded, err = p.record(ctx)
	return o, err
}

// maxCatchUp bounds the sweeps of one step. The sweeper runs every
// sweep_interval in a running server, so by the time of a step it would
// have sent every notice due since the last one; the delay policy sends
// one step per visit, so one sweep is not always enough to catch up.
const maxCatchUp = 16

// sweep runs sweeps at the step's time until one changes nothing. A
// failed visit is the policy's or the ledger's trouble, reported with the
// step; the real sweeper too goes on after one.
func (p *player) sweep(ctx context.Context) error {
	var errs []error
	for range maxCatchUp {
		before, err := p.progress(ctx)
		if err != nil {
			return err
		}
		if _, err := p.srv.SweepNotices(ctx); err != nil {
			errs = append(errs, err)
		}
		after, err := p.progress(ctx)
		if err != nil {
			return err
		}
		if after == before {
			break
		}
	}
	return errors.Join(errs...)
}

// sweepProgress is what a sweep may change about the record: its state and
// its outbox (a step claimed, sent, failed or suppressed).
type sweepProgress struct {
	state   retry.State
	outbox  int
	notices int
	settled int
}

func (p *player) progress(ctx context.Context) (sweepProgress, error) {
	rec, ok, err := p.record(ctx)
	if err != nil || !ok {
		return sweepProgress{}, err
	}
	sp := sweepProgress{state: rec.State, outbox: len(rec.Outbox), notices: len(rec.Notices)}
	for _, e := range rec.Outbox {
		if e.Status.Final() {
			sp.settled++
		}
	}
	return sp, nil
}

// record reads the message's record: the temporary ledger holds no other.
func (p *player) record(ctx context.Context) (retry.Record, bool, error) {
	recs, err := p.ledger.List(ctx, retry.Filter{Limit: 1})
	if err != nil {
		return retry.Record{}, false, fmt.Errorf("reading the ledger: %w", err)
	}
	if len(recs) == 0 {
		return retry.Record{}, false, nil
	}
	return recs[0], true, nil
}
