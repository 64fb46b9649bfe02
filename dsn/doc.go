// Package dsn tells a sender what became of their message: it composes
// RFC 3464 delivery status notifications ("delayed", "failed", and the
// "delay cleared" notice) and submits them over SMTP. Deciding when a notice
// is due, and to whom, is not its job: the retry sweeper and the delay
// policy plugin decide, then call Compose and Submitter.Submit.
//
// Composition and sending are kept apart (as mox keeps its dsn package apart
// from its queue): Compose is pure, does no I/O and is fully testable by
// parsing its output back; Submit only moves bytes to an MTA.
//
// # What a notice looks like
//
// Compose returns a complete RFC 5322 message with CRLF line endings:
//
//	From: MAILER-DAEMON@mx.example.org       (the envelope sender is always <>)
//	To: <the original envelope sender>
//	Subject: Delayed Mail (still being retried)
//	Date, Message-Id, MIME-Version
//	Auto-Submitted: auto-replied              (RFC 3834: nobody auto-replies to it)
//	Content-Type: multipart/report; report-type=delivery-status  (RFC 6522)
//
//	1. text/plain; charset=utf-8: the human-readable explanation
//	   (quoted-printable when it is not plain short-lined ASCII)
//	2. message/delivery-status (RFC 3464 §2): the per-message fields
//	   Reporting-MTA, Original-Envelope-Id, Arrival-Date, then one group per
//	   recipient: Final-Recipient, Action, Status (RFC 3463), Diagnostic-Code,
//	   Last-Attempt-Date, Will-Retry-Until
//	3. text/rfc822-headers (RFC 6522 §4, formerly RFC 3462): the original
//	   message's header, folding kept, bounded by MaxOriginalHeaderBytes;
//	   never the body
//
// The whole notice is 7-bit: anything 8-bit travels quoted-printable, so
// submission needs neither 8BITMIME nor SMTPUTF8.
//
// # Input is checked, never trusted
//
// Everything that ends up in a header of the notice or in the
// delivery-status fields is validated: a CR or LF in To, Subject, an
// address, a status or a diagnostic is an error wrapping ErrInvalid, never a
// header injected into the notice. The original header is quoted as
// evidence: its folding is normalised to CRLF, and a line break that would
// start a new field is refused. Compose never panics on any input (a fuzz
// target holds it to that).
//
// # Sending
//
// Submitter.Submit speaks SMTP (RFC 5321) with go-smtp's client to one MTA,
// normally the local one: MAIL FROM:<> always, so a notice about a notice can
// never be generated (RFC 3461 §6.2, RFC 5321 §4.5.5), one RCPT TO and DATA.
// It refuses the null sender as a recipient without connecting. Failures are
// *SubmitError values that say whether to retry later (4xx, connection
// trouble, cancellation) or to give up on the notice (5xx).
//
// Addresses must be ASCII: internationalised addresses need the RFC 6533
// utf-8 address type and message/global-delivery-status, not done yet.
package dsn
