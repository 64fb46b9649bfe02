package retry

import (
	"context"
	"errors"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// State is where a record stands in the state machine (see the package
// documentation for the table of transitions).
type State string

// The states of a record.
const (
	// Deferred: the last attempt was answered 4xx; the sender's MTA will retry.
	Deferred State = "deferred"
	// Released: an admin let the message through; its next attempt passes.
	Released State = "released"
	// Passed: an attempt was let through. Kept for audit until purged.
	Passed State = "passed"
	// Expired: deferred for longer than the policy allows; every further
	// attempt is answered with the permanent error. Final.
	Expired State = "expired"
	// Held: quarantined by an admin or a policy; arrivals go to the MTA's
	// hold queue until an admin releases or expires the record.
	Held State = "held"
)

// States lists every state, in the order admin views show them.
var States = []State{Deferred, Released, Held, Passed, Expired}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case Deferred, Released, Passed, Expired, Held:
		return true
	}
	return false
}

// Reason is an SMTP answer: the reply code, the RFC 3463 enhanced status
// code and the text.
type Reason struct {
	Code     int
	Enhanced string
	Text     string
}

// Attempt is one delivery attempt of a message as the MTA presented it.
type Attempt struct {
	At       time.Time
	QueueID  string
	ClientIP string
	Helo     string
	Reason   Reason // what the attempt was answered
}

// Header is one field of the message's original header.
type Header struct{ Name, Value string }

// Notice is a delay notice sent to the sender about a record.
type Notice struct {
	Step int       // the delay policy's step that sent it
	At   time.Time // when it was sent
	Kind string    // e.g. "delayed"
}

// Record is everything the ledger knows about one message identity.
type Record struct {
	ID        stamp.Identity
	FirstSeen time.Time // the stamp's time: set when the record is created, never changed
	LastSeen  time.Time // time of the latest attempt
	State     State
	Attempts  int       // every attempt counted, including those History dropped
	History   []Attempt // the first attempt and the last MaxHistory-1, oldest first

	Sender     string
	Recipients []string
	// AuthUser is the SASL login name the sender authenticated with (the
	// MTA's {auth_authen} macro) at the latest attempt that had one; "" when
	// no attempt was authenticated. A delay policy may tell authenticated
	// senders, who certainly asked us to carry their mail.
	AuthUser  string
	Headers   []Header // the original header, at most MaxHeaderBytes, for a later delay notice
	Truncated bool     // Headers lost fields to the MaxHeaderBytes bound

	Notices []Notice // delay notices sent (the relay accepted them), oldest first

	// Outbox is the state of every policy step's notice ever claimed, in
	// step order: leased, pending a retry, sent or failed (see ClaimNotice).
	Outbox []OutboxEntry

	// ExpiredAt and ExpiredReason are set when the record expires: the time
	// and the permanent answer every later attempt is given.
	ExpiredAt     time.Time
	ExpiredReason Reason

	UpdatedAt time.Time // the ledger's clock at the last change of any kind
}

// Bounds that every backend applies in the same way (see transition.go), so
// a record is the same whichever backend holds it.
const (
	// MaxHistory is how many attempts a record keeps: the first, which
	// explains how it started, and the latest MaxHistory-1.
	MaxHistory = 16
	// MaxHeaderBytes bounds the stored header, counted as it would be
	// written ("Name: value\r\n"). Fields past it are dropped, in order, and
	// the record is flagged Truncated.
	MaxHeaderBytes = 16 << 10
	// MaxAuthUserBytes bounds Record.AuthUser, a login name.
	MaxAuthUserBytes = 255
	// DefaultListLimit is the page size of List when Filter.Limit is zero.
	DefaultListLimit = 1000
)

// Errors returned by every backend; test with errors.Is.
var (
	// ErrNotFound: no record for the identity.
	ErrNotFound = errors.New("retry: no record for this message identity")
	// ErrTransition: the operation is not allowed from the record's state.
	ErrTransition = errors.New("retry: transition not allowed")
	// ErrInvalid: the caller's input is malformed.
	ErrInvalid = errors.New("retry: invalid input")
	// ErrClosed: the ledger was closed.
	ErrClosed = errors.New("retry: ledger closed")
	// ErrLeaseLost: CompleteNotice or ReleaseNotice from a node that does
	// not hold the step: it never claimed it, its lease ran out and another
	// node took the step over, or the step was completed already with
	// another outcome. The caller's answer does not count; the holder's does.
	ErrLeaseLost = errors.New("retry: notice lease lost: this node does not hold the step")
)

// Deferral is a deferred attempt to record.
type Deferral struct {
	ID      stamp.Identity
	Attempt Attempt // Attempt.Reason is the 4xx answer about to be given
	// FirstSeen is the time written into the message's stamp, used only
	// when the record is created; zero means Attempt.At. The pipeline mints
	// the stamp before the deferral is decided, and passing the stamp's own
	// time here keeps the stamp a retry receives byte-identical.
	FirstSeen  time.Time
	Sender     string
	Recipients []string
	AuthUser   string // the MTA's {auth_authen}: "" unless the client authenticated
	Headers    []Header
}

// Filter selects records for List.
type Filter struct {
	State State          // "" for every state
	Limit int            // at most this many; 0 for DefaultListLimit
	After stamp.Identity // cursor: only identities after this one; zero to start
}

// PurgeFilter selects records to delete for Purge.
type PurgeFilter struct {
	States        []State   // required: which states may be purged
	UpdatedBefore time.Time // required: only records last changed before it
}

// Ledger is the durable retry ledger. Every method that changes a record is
// one atomic operation on the store: the read, the state check and the
// write happen together, so concurrent sessions, nodes and admins never
// lose an update.
type Ledger interface {
	// Get returns the record of id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id stamp.Identity) (Record, error)
	// Defer records a deferred attempt: it creates the record (FirstSeen =
	// d.FirstSeen or the attempt's time) or adds the attempt to it. It
	// returns only when the write is durable, so the caller may then answer
	// 4xx.
	Defer(ctx context.Context, d Deferral) (Record, error)
	// Pass records an attempt that was let through; the record is kept for
	// audit in state passed.
	Pass(ctx context.Context, id stamp.Identity, a Attempt) (Record, error)
	// Release lets the message's next attempt pass (admin).
	Release(ctx context.Context, id stamp.Identity) (Record, error)
	// Hold quarantines the message (admin or policy).
	Hold(ctx context.Context, id stamp.Identity) (Record, error)
	// Expire ends the record with the permanent answer r (a 5xx).
	Expire(ctx context.Context, id stamp.Identity, at time.Time, r Reason) (Record, error)
	// List returns records in identity order, from f.After on.
	List(ctx context.Context, f Filter) ([]Record, error)
	// Purge deletes the records p selects and says how many.
	Purge(ctx context.Context, p PurgeFilter) (int, error)

	// ClaimNotice takes a lease on the notice of the delay policy's step
	// for node, lasting lease from now, before the node sends it. won is
	// true when the lease was taken; false, with the current record and no
	// error, when the step is sent, permanently failed, released but not
	// yet due, or leased by any node (the caller too) until after now. A
	// lease that ran out may be taken over: that is how a notice claimed
	// by a node that crashed is still sent. Refused with ErrTransition on a
	// passed or expired record (except ClearedNoticeStep, which only a
	// passed record takes), or when the outbox is full (MaxOutbox).
	ClaimNotice(ctx context.Context, id stamp.Identity, step int, node string, lease time.Duration, now time.Time) (rec Record, won bool, err error)
	// CompleteNotice records what became of a claimed step's notice, sent,
	// permanently failed or suppressed, and ends the lease. Sent is
	// recorded from any node while the step is not final (the notice went
	// out, whoever's lease it was) and adds the step to Record.Notices;
	// failed and suppressed only from the node holding the step. Repeating the recorded outcome from the
	// same node succeeds and changes nothing. Otherwise ErrLeaseLost.
	CompleteNotice(ctx context.Context, id stamp.Identity, step int, node string, now time.Time, o NoticeOutcome) (Record, error)
	// ReleaseNotice gives a step node holds back after a temporary
	// failure: any node may claim it again from retryAt on (a zero or past
	// retryAt: at once). cause is kept for the admin view. ErrLeaseLost if
	// node does not hold the step.
	ReleaseNotice(ctx context.Context, id stamp.Identity, step int, node string, now, retryAt time.Time, cause string) (Record, error)

	// Close releases the store. Later calls return ErrClosed.
	Close() error
}

// FirstSeenLookup answers when a message identity was first seen from a
// ledger; it satisfies pipeline.FirstSeener. A message the ledger does not
// know is seen first now.
type FirstSeenLookup struct{ Ledger Ledger }

// FirstSeen returns the record's FirstSeen, or now for an unknown identity.
func (f FirstSeenLookup) FirstSeen(ctx context.Context, id stamp.Identity, now time.Time) (time.Time, error) {
	rec, err := f.Ledger.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return now, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return rec.FirstSeen, nil
}
