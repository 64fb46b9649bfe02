package dsn

import (
	"errors"
	"time"
)

// ErrInvalid is wrapped by every error about the caller's input (a field
// that would inject a header, a malformed status, the null sender as a
// recipient). Test with errors.Is. Such a notice can never be sent as it
// is: fix the input rather than retry.
var ErrInvalid = errors.New("dsn: invalid input")

// Action is what happened to the message for one recipient (RFC 3464
// §2.3.3).
//
// RFC 3464 has no "cleared" action for the notice that tells a sender an
// earlier delay is over. Use Relayed for it: what wasmilter knows is that its
// MTA finally accepted the message and passed it on, not that it reached a
// mailbox. "delivered" asserts final delivery, which only the final MTA
// can report, and any later failure is the accepting MTA's to report.
type Action string

// The actions a notice can report.
const (
	// Delayed: not delivered yet, still being retried. Status 4.x.x.
	Delayed Action = "delayed"
	// Failed: given up. Status 5.x.x, or 4.x.x when the last answer was a
	// transient one that simply lasted too long (as Postfix reports
	// expired mail).
	Failed Action = "failed"
	// Delivered: delivered to the recipient's mailbox. Status 2.x.x.
	Delivered Action = "delivered"
	// Relayed: passed on to where no further success report is made; the
	// action for the "delay cleared" notice (see Action). Status 2.x.x.
	Relayed Action = "relayed"
)

// statusClass is the first digit of the RFC 3463 status codes that RFC 3464
// allows with each action; Compose refuses a status that contradicts its
// action, because a reader acts on the status, not on the wording.
var statusClass = map[Action]string{
	Delayed:   "4",
	Failed:    "45",
	Delivered: "2",
	Relayed:   "2",
}

// Recipient is the report about one recipient of the original message.
type Recipient struct {
	// Address is the recipient's address as it was given in RCPT TO,
	// without angle brackets; it becomes "Final-Recipient: rfc822; Address".
	Address string
	// Action is what happened for this recipient.
	Action Action
	// Status is the RFC 3463 enhanced status code, e.g. "4.7.1".
	Status string
	// Diagnostic is the optional Diagnostic-Code value, "type; text", e.g.
	// "smtp; 451 4.7.1 Greylisted". SMTPDiagnostic builds one from a reply.
	Diagnostic string
	// WillRetryUntil is when retrying ends; only for Delayed. Zero: omitted.
	WillRetryUntil time.Time
	// LastAttempt is the time of the last delivery attempt. Zero: omitted.
	LastAttempt time.Time
}

// Header is one field of the original message's header, as the MTA passed
// it to the milter: the name without the colon, the value possibly folded
// (with LF or CRLF line breaks, each followed by a space or tab).
type Header struct {
	Name, Value string
}

// Notice is everything a delivery status notification is made from.
type Notice struct {
	// ReportingMTA names this host, "mx.example.org" or "dns; mx.example.org"
	// (only the "dns" type is supported). Required. It also names the
	// default From and the host part of a generated Message-ID.
	ReportingMTA string
	// From is the notice's From header field, e.g.
	// "MAILER-DAEMON@mx.example.org" or "Mail Delivery System
	// <MAILER-DAEMON@mx.example.org>". Empty: MAILER-DAEMON@ the reporting
	// host. (The envelope sender of a notice is always <>, see Submitter.)
	From string
	// To is the original envelope sender: the notice's recipient. Never
	// empty: nobody is notified about mail from the null sender.
	To string
	// ArrivalDate is when the original message was first seen. Zero:
	// Arrival-Date is omitted.
	ArrivalDate time.Time
	// Recipients are reported on, one delivery-status group each. At least
	// one.
	Recipients []Recipient
	// HumanText is the readable explanation (the delay policy's text,
	// plain UTF-8, may span lines). Empty: a default that lists the
	// recipients and what happened to each.
	HumanText string
	// OriginalHeader is the original message's header, in order; it is
	// quoted in the text/rfc822-headers part, at most
	// MaxOriginalHeaderBytes of it.
	OriginalHeader []Header
	// OriginalEnvelopeID is the ENVID the sender gave (RFC 3461 §4.4),
	// xtext-decoded. Empty: omitted.
	OriginalEnvelopeID string
	// Subject of the notice. Empty: a default matching the actions, see
	// DefaultSubject.
	Subject string
	// MessageID of the notice, with or without angle brackets. Empty: a
	// random one at the reporting host.
	MessageID string
	// Date of the notice: the caller's clock, so that Compose stays pure.
	// Required.
	Date time.Time
}

// Default subjects, by the most serious action in the notice.
const (
	SubjectFailed  = "Undelivered Mail Returned to Sender"
	SubjectDelayed = "Delayed Mail (still being retried)"
	SubjectCleared = "Delayed Mail (no longer delayed)"
)

// MaxOriginalHeaderBytes bounds the quoted original header, counted as
// written ("Name: value\r\n"). Fields past the bound are left out whole, in
// order, so what is quoted is always a prefix of the original header and
// never a cut field. It matches the retry ledger's own bound.
const MaxOriginalHeaderBytes = 16 << 10

// DefaultSubject is the subject a notice about these recipients gets when
// Notice.Subject is empty: a failure outweighs a delay, a delay outweighs a
// cleared delay.
func DefaultSubject(rs []Recipient) string {
	switch worstAction(rs) {
	case Failed:
		return SubjectFailed
	case Delayed:
		return SubjectDelayed
	default:
		return SubjectCleared
	}
}

// worstAction is the action the sender most needs to hear about.
func worstAction(rs []Recipient) Action {
	worst := Relayed
	for _, r := range rs {
		switch {
		case r.Action == Failed:
			return Failed
		case r.Action == Delayed:
			worst = Delayed
		}
	}
	return worst
}
