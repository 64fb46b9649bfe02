package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Sender submits a composed notice to the relay, from the null sender.
// *dsn.Submitter is one. An error that is a *dsn.SubmitError says whether
// to retry; any other error counts as temporary, except one wrapping
// dsn.ErrInvalid.
type Sender interface {
	Submit(ctx context.Context, to string, msg []byte) error
}

// Counter is a store of counters that expire, for the per-sender rate
// limit: the property cache's key/value store (cache.Cache) is one.
type Counter interface {
	KVIncr(ns, key string, delta int64, ttl time.Duration) (int64, error)
}

// Defaults of Options.
const (
	DefaultLease         = 5 * time.Minute
	DefaultRetryAfter    = 15 * time.Minute
	DefaultClearedWithin = 24 * time.Hour
	// leaseMargin is kept between the end of a send and the end of its
	// lease, for clock skew between nodes: a send that ran to the very end
	// of its lease could overlap another node's takeover.
	leaseMargin = 10 * time.Second
)

// Options configure a Notifier. Ledger, Policy, Sender, Node and
// ReportingMTA are required.
type Options struct {
	Ledger retry.Ledger
	// Policy is the delay-notification policy: a chain whose plugins
	// implement the delay hook.
	Policy *plugins.Chain
	Sender Sender
	// Node names this node in outbox leases: unique among nodes sharing a
	// ledger, and the same across restarts.
	Node string
	// ReportingMTA is this host's name, for Reporting-MTA, the notice's
	// From and its Message-ID.
	ReportingMTA string
	// From is the notice's From header; "" means MAILER-DAEMON@ReportingMTA.
	From string
	// Retry is the ledger's time policy: its MaxAge is the notice's
	// Will-Retry-Until, its ExpiredReason the answer an expired record keeps.
	Retry retry.Policy
	// Lease is how long a claimed step is this node's to send; 0 means
	// DefaultLease. A send is cut off 10 s before the lease ends.
	Lease time.Duration
	// RetryAfter is how long a step waits after a temporary failure; 0
	// means DefaultRetryAfter.
	RetryAfter time.Duration
	// RateLimit and RateWindow: at most RateLimit notices per sender per
	// RateWindow, counted in Counter; RateLimit 0 means no limit.
	RateLimit  int
	RateWindow time.Duration
	Counter    Counter
	// Disabled sends no notices at all; the policy is still asked and may
	// still expire messages.
	Disabled bool
	// Cleared sends a "no longer delayed" notice when a message whose
	// sender was told of its delay finally passed, if it passed within
	// ClearedWithin (0: DefaultClearedWithin). The sweeper must then walk
	// passed records too (SweptStates).
	Cleared       bool
	ClearedWithin time.Duration
	// StampHeader is the stamp's header name, which the header properties
	// leave out of their fingerprint.
	StampHeader string
	// Clock times the outcome of a send; nil means time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Notifier visits the records the sweeper hands it. It is safe for
// concurrent use: everything it decides is settled by atomic ledger
// operations.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	clock func() time.Time
	rate  *rateLimit
	stats stats
}

// stats are the notifier's counters, for metrics and tests.
type stats struct {
	sent, failed, suppressed, retried, expired, policyErrors atomic.Int64
}

// Stats is a snapshot of what a Notifier did since it was made.
type Stats struct {
	Sent         int64 // notices the relay accepted
	Failed       int64 // notices the relay refused for good
	Suppressed   int64 // steps not sent: the sender was over the rate limit
	Retried      int64 // sends that failed temporarily, released for a later sweep
	Expired      int64 // records the policy gave up
	PolicyErrors int64 // delay-hook calls that failed
}

// New checks opts and makes a Notifier.
func New(opts Options) (*Notifier, error) {
	switch {
	case opts.Ledger == nil:
		return nil, errors.New("notify: no ledger")
	case opts.Policy == nil || !opts.Policy.Hooks().Has(abi.HookDelay):
		return nil, errors.New("notify: the delay policy implements no delay hook")
	case opts.Sender == nil:
		return nil, errors.New("notify: no sender")
	case opts.Node == "":
		return nil, errors.New("notify: no node name")
	case opts.ReportingMTA == "":
		return nil, errors.New("notify: no reporting MTA name")
	case opts.RateLimit < 0 || (opts.RateLimit > 0 && (opts.RateWindow <= 0 || opts.Counter == nil)):
		return nil, fmt.Errorf("notify: rate limit %d per %s needs a positive window and a counter store", opts.RateLimit, opts.RateWindow)
	}
	if err := opts.Retry.Validate(); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	opts.Lease = orDefault(opts.Lease, DefaultLease)
	opts.RetryAfter = orDefault(opts.RetryAfter, DefaultRetryAfter)
	opts.ClearedWithin = orDefault(opts.ClearedWithin, DefaultClearedWithin)
	if opts.Lease <= leaseMargin {
		return nil, fmt.Errorf("notify: lease %s is too short: a send needs more than %s", opts.Lease, leaseMargin)
	}
	n := &Notifier{opts: opts, log: opts.Logger, clock: opts.Clock}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.clock == nil {
		n.clock = time.Now
	}
	if opts.RateLimit > 0 {
		n.rate = &rateLimit{limit: int64(opts.RateLimit), window: opts.RateWindow, counter: opts.Counter}
	}
	return n, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// SweptStates are the states the sweeper must walk for this notifier.
func (n *Notifier) SweptStates() []retry.State {
	if n.opts.Cleared && !n.opts.Disabled {
		return append(append([]retry.State(nil), retry.SweptStates...), retry.Passed)
	}
	return retry.SweptStates
}

// Stats returns the notifier's counters.
func (n *Notifier) Stats() Stats {
	s := &n.stats
	return Stats{Sent: s.sent.Load(), Failed: s.failed.Load(), Suppressed: s.suppressed.Load(),
		Retried: s.retried.Load(), Expired: s.expired.Load(), PolicyErrors: s.policyErrors.Load()}
}

// Visit decides about one record; it is the sweeper's retry.Visit. An
// error means this visit could not finish (the policy failed, the ledger
// failed); whatever was not settled is tried again at the next sweep.
func (n *Notifier) Visit(ctx context.Context, now time.Time, rec retry.Record) error {
	if rec.State == retry.Passed {
		return n.visitPassed(ctx, now, rec)
	}
	answer, err := n.ask(ctx, now, rec)
	if err != nil {
		n.stats.policyErrors.Add(1)
		return err
	}
	switch answer.kind {
	case abi.Expire:
		return n.expire(ctx, now, rec, answer.text)
	case abi.Notify:
		if n.opts.Disabled {
			return nil
		}
		_, err := n.send(ctx, now, rec, rec.DelayStepsDone()+1, dsn.Delayed, answer.text)
		return err
	}
	return nil
}

// expire gives a message up: the final notice first, when there is one to
// send, then the record. A final notice that is still in flight (another
// node's lease) or waiting for a retry leaves the record as it is for a
// later sweep, so the sender hears of the expiry before the record stops
// being swept.
func (n *Notifier) expire(ctx context.Context, now time.Time, rec retry.Record, text string) error {
	if text != "" && !n.opts.Disabled {
		settled, err := n.send(ctx, now, rec, retry.FinalNoticeStep, dsn.Failed, text)
		if err != nil || !settled {
			return err
		}
	}
	_, err := n.opts.Ledger.Expire(ctx, rec.ID, n.clock(), n.opts.Retry.ExpiredReason())
	switch {
	case errors.Is(err, retry.ErrTransition):
		return nil // passed or expired meanwhile: nothing left to give up
	case err != nil:
		return fmt.Errorf("expire %s: %w", rec.ID, err)
	}
	n.stats.expired.Add(1)
	n.log.Info("delay policy expired a message", n.attrs(rec)...)
	return nil
}

// visitPassed sends the "no longer delayed" notice a passed record is owed.
func (n *Notifier) visitPassed(ctx context.Context, now time.Time, rec retry.Record) error {
	if !n.opts.Cleared || n.opts.Disabled || !toldOfDelay(rec) || now.Sub(rec.LastSeen) > n.opts.ClearedWithin {
		return nil
	}
	if e, ok := rec.OutboxEntry(retry.ClearedNoticeStep); ok && e.Status.Final() {
		return nil
	}
	_, err := n.send(ctx, now, rec, retry.ClearedNoticeStep, dsn.Relayed, "")
	return err
}

// toldOfDelay reports whether a "delayed" notice about rec was sent.
func toldOfDelay(rec retry.Record) bool {
	for _, nt := range rec.Notices {
		if nt.Kind == retry.DefaultNoticeKind {
			return true
		}
	}
	return false
}

// attrs are the log attributes that let an admin follow a message through
// the MTA's log and wasmilter's.
func (n *Notifier) attrs(rec retry.Record, more ...any) []any {
	qid := ""
	if len(rec.History) > 0 {
		qid = rec.History[len(rec.History)-1].QueueID
	}
	return append([]any{"identity", rec.ID.String(), "queue_id", qid, "sender", rec.Sender, "state", string(rec.State)}, more...)
}

// oneLineError is an error as an outbox keeps it.
func oneLineError(err error) string { return strings.TrimSpace(err.Error()) }
