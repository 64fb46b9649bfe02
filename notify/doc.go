// Package notify tells senders about their waiting mail: for every record
// the retry sweeper visits, it asks the delay-notification policy (a Wasm
// plugin's delay hook), applies the host's guards whatever the policy
// said, and sends what is due as an RFC 3464 delivery status notification
// through the ledger's outbox. It owns that decision loop only: the ledger
// keeps the records and the outbox (package retry), the plugin host runs
// the policy (package plugins), and package dsn composes and submits the
// notice.
//
// # One visit
//
// Notifier.Visit is a retry.Visit. For a deferred or held record it hands
// the policy the record (the record host function), the original envelope
// and header (the event), the login name the sender authenticated with
// (macro {auth_authen}) and the header properties, on the sweeper's clock.
// The policy answers nothing, notify (with the notice's text) or expire
// (with the text of a final "failed" notice, or none).
//
//   - notify: the next policy step, retry.Record.DelayStepsDone()+1, is
//     claimed in the outbox; only the node that wins the claim sends it.
//   - expire: the final notice (retry.FinalNoticeStep) is sent first, if
//     there is a text and the guards allow it, and the record is expired
//     once that step is settled; a relay that is down delays the expiry to
//     a later sweep rather than losing the notice. Without a notice, the
//     record is expired at once.
//   - with Options.Cleared, a passed record whose sender was told of a
//     delay gets one "no longer delayed" notice (retry.ClearedNoticeStep),
//     within ClearedWithin of passing.
//
// # Guards
//
// Whatever the policy answers, no notice goes to the null sender or a
// MAILER-DAEMON, none about a delivery report (multipart/report) or an
// Auto-Submitted message (RFC 3834 §2), none about a message without
// recipients; each step is sent at most once (the outbox); a sender gets
// at most Options.RateLimit notices per window (further steps are recorded
// as suppressed, not queued, so a flood never turns into a later flood of
// notices); and Options.Disabled turns notices off altogether while still
// letting the policy expire messages.
//
// # Delivery guarantee
//
// What the outbox gives (see package retry): at most one live sender per
// step across nodes, nothing lost to a crash or a temporary SMTP failure
// (the step is released and sent on a later sweep), and a duplicate only
// if the process dies between the relay's 250 and the recording of it;
// the duplicate carries the first copy's Message-ID. A send is bounded by
// its lease, so a send never outlives its claim.
package notify
