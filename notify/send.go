package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/retry"
)

// kinds are what retry.Record.Notices records for each action.
var kinds = map[dsn.Action]string{dsn.Delayed: retry.DefaultNoticeKind, dsn.Failed: "failed", dsn.Relayed: "cleared"}

// send sends step's notice about rec through the outbox: guard, claim,
// rate limit, compose, submit, record the outcome. settled reports whether
// the step is final now (sent, refused for good, suppressed, or it already
// was), as opposed to in flight elsewhere or waiting for a retry. A notice
// the guards refuse is settled without a claim: nothing will ever be sent
// for it.
func (n *Notifier) send(ctx context.Context, now time.Time, rec retry.Record, step int, action dsn.Action, text string) (settled bool, err error) {
	if why := refusal(rec, n.opts.StampHeader); why != "" {
		n.log.Debug("no notice: guard", n.attrs(rec, "step", step, "why", why)...)
		return true, nil
	}
	claimed, won, err := n.opts.Ledger.ClaimNotice(ctx, rec.ID, step, n.opts.Node, n.opts.Lease, now)
	switch {
	case errors.Is(err, retry.ErrTransition):
		return false, nil // passed or expired since it was read: no notice is owed now
	case err != nil:
		return false, fmt.Errorf("claim notice step %d of %s: %w", step, rec.ID, err)
	case !won:
		e, ok := claimed.OutboxEntry(step)
		return ok && e.Status.Final(), nil
	}
	// From here on this node holds the step, and every outcome is
	// recorded even if ctx ends: a shutdown must not leave a lease to run
	// out when the answer is known.
	lease, _ := claimed.OutboxEntry(step)
	record := context.WithoutCancel(ctx)
	if n.rate != nil && !n.rate.allow(claimed.Sender) {
		n.stats.suppressed.Add(1)
		n.log.Warn("notice suppressed: sender over the rate limit", n.attrs(rec, "step", step, "limit", n.rate.String())...)
		return true, n.complete(record, claimed, step, retry.NoticeOutcome{Status: retry.NoticeSuppressed,
			Error: "sender over the notice rate limit (" + n.rate.String() + ")"})
	}
	msg, err := n.compose(claimed, step, action, text)
	if err != nil {
		// Nothing about this record will ever compose (a header that would
		// inject, an address that is not ASCII): settle the step.
		n.stats.failed.Add(1)
		n.log.Error("notice cannot be composed", n.attrs(rec, "step", step, "err", err)...)
		return true, n.complete(record, claimed, step, retry.NoticeOutcome{Status: retry.NoticeFailed, Error: oneLineError(err)})
	}
	sendCtx, cancel := context.WithDeadline(ctx, lease.Until.Add(-leaseMargin))
	err = n.opts.Sender.Submit(sendCtx, claimed.Sender, msg)
	cancel()
	return n.settle(record, claimed, step, action, err)
}

// settle records what became of a submission.
func (n *Notifier) settle(ctx context.Context, rec retry.Record, step int, action dsn.Action, err error) (bool, error) {
	if err == nil {
		n.stats.sent.Add(1)
		n.log.Info("notice sent", n.attrs(rec, "step", step, "action", string(action))...)
		return true, n.complete(ctx, rec, step, retry.NoticeOutcome{Status: retry.NoticeSent, Kind: kinds[action]})
	}
	if temporary(err) {
		n.stats.retried.Add(1)
		retryAt := n.clock().Add(n.opts.RetryAfter)
		n.log.Warn("notice not sent, will retry", n.attrs(rec, "step", step, "retry_at", retryAt, "err", err)...)
		if _, rerr := n.opts.Ledger.ReleaseNotice(ctx, rec.ID, step, n.opts.Node, n.clock(), retryAt, oneLineError(err)); rerr != nil {
			// The lease runs out by itself and the step is taken over then.
			return false, fmt.Errorf("release notice step %d of %s after %v: %w", step, rec.ID, err, rerr)
		}
		return false, fmt.Errorf("notice step %d of %s: %w", step, rec.ID, err)
	}
	n.stats.failed.Add(1)
	n.log.Error("notice refused by the relay", n.attrs(rec, "step", step, "err", err)...)
	return true, n.complete(ctx, rec, step, retry.NoticeOutcome{Status: retry.NoticeFailed, Error: oneLineError(err)})
}

func (n *Notifier) complete(ctx context.Context, rec retry.Record, step int, o retry.NoticeOutcome) error {
	if _, err := n.opts.Ledger.CompleteNotice(ctx, rec.ID, step, n.opts.Node, n.clock(), o); err != nil {
		return fmt.Errorf("record notice step %d of %s as %s: %w", step, rec.ID, o.Status, err)
	}
	return nil
}

// temporary tells a submission worth retrying from one that never will
// succeed.
func temporary(err error) bool {
	var se *dsn.SubmitError
	if errors.As(err, &se) {
		return se.Temporary
	}
	return !errors.Is(err, dsn.ErrInvalid)
}
