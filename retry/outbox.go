package retry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmilter/wasmilter/stamp"
)

// This file is the notice outbox: per record and per delay-policy step, the
// state of the delay notice that step calls for. Like transition.go, every
// rule is a pure function from the stored record to the next one, which a
// backend runs inside one atomic operation (a bbolt write transaction; for
// Redis, a WATCH/MULTI/EXEC transaction). The package documentation states
// the guarantee.

// NoticeStatus is where one step's notice stands in a record's outbox.
type NoticeStatus string

// The statuses of an outbox entry.
const (
	// NoticeLeased: a node claimed the step and is sending its notice until
	// OutboxEntry.Until; after that the claim can be taken over.
	NoticeLeased NoticeStatus = "leased"
	// NoticePending: the last send failed temporarily; the step may be
	// claimed again from OutboxEntry.Until on.
	NoticePending NoticeStatus = "pending"
	// NoticeSent: the relay accepted the notice. Final; the step is also
	// listed in Record.Notices.
	NoticeSent NoticeStatus = "sent"
	// NoticeFailed: the relay refused the notice permanently (5xx). Final:
	// sending the same notice again would be refused again.
	NoticeFailed NoticeStatus = "failed"
	// NoticeSuppressed: the node that claimed the step decided not to send
	// it (the sender is over the notice rate limit). Final: the step
	// counts as done, so a flood of messages from one sender cannot turn
	// into a flood of notices later either.
	NoticeSuppressed NoticeStatus = "suppressed"
)

// Valid reports whether s is one of the defined statuses.
func (s NoticeStatus) Valid() bool {
	switch s {
	case NoticeLeased, NoticePending, NoticeSent, NoticeFailed, NoticeSuppressed:
		return true
	}
	return false
}

// Final reports whether no claim can ever succeed on a step in status s.
func (s NoticeStatus) Final() bool {
	return s == NoticeSent || s == NoticeFailed || s == NoticeSuppressed
}

// OutboxEntry is the state of one policy step's notice for one record: what
// the admin view shows and what ClaimNotice decides on.
type OutboxEntry struct {
	Step   int
	Status NoticeStatus
	// Node is the node that holds the lease (leased), or that last held it.
	Node string
	// Until is the end of the lease (leased) or the earliest time the step
	// may be claimed again (pending); zero otherwise.
	Until time.Time
	// Claims counts the claims taken on this step: more than one means a
	// temporary failure was retried or an expired lease was taken over.
	Claims int
	// Error is the last failure reported (temporary or permanent), one
	// line, at most MaxNoticeErrorBytes; "" once sent.
	Error string
	// At is when the entry last changed, by the caller's clock.
	At time.Time
}

// NoticeOutcome is what became of a claimed notice, for CompleteNotice.
type NoticeOutcome struct {
	// Status is NoticeSent (the relay accepted it), NoticeFailed (the
	// relay refused it permanently) or NoticeSuppressed (the holder chose
	// not to send it).
	Status NoticeStatus
	// Kind is the notice's kind as recorded in Record.Notices; "" means
	// "delayed".
	Kind string
	// Error is the relay's answer when Status is NoticeFailed, or why the
	// notice was not sent when NoticeSuppressed.
	Error string
}

// Bounds of the outbox, applied by every backend alike.
const (
	// MaxOutbox is how many steps one record's outbox holds. A delay policy
	// has a handful of steps (say 4 h, 1 d, 2 d, 4 d); a policy that keeps
	// inventing new ones is refused rather than growing the record forever.
	MaxOutbox = 32
	// MaxNoticeErrorBytes bounds OutboxEntry.Error; longer texts are cut.
	MaxNoticeErrorBytes = 512
	// MaxNodeBytes bounds a node name.
	MaxNodeBytes = 255
)

// DefaultNoticeKind is the Kind recorded when NoticeOutcome.Kind is empty.
const DefaultNoticeKind = "delayed"

// Steps. The delay policy's steps count from 1 (the first "still delayed"
// notice is step 1) and stay below FinalNoticeStep. Two steps are reserved,
// so that each notice about a record has its own place in the outbox and
// is sent at most once like every other step:
const (
	// FinalNoticeStep is the "failed" notice sent when the delay policy
	// gives a message up. It is claimed while the record is still
	// deferred or held, before it is expired.
	FinalNoticeStep = 1 << 16
	// ClearedNoticeStep is the "no longer delayed" notice sent after a
	// message its sender was told about finally passed. It is the only
	// step claimable on a passed record, and only on one.
	ClearedNoticeStep = FinalNoticeStep + 1
)

// DelayStepsDone is how many of the delay policy's steps are behind the
// record: the highest policy step (below FinalNoticeStep) whose notice was
// sent, refused for good or suppressed. The next policy step is one more.
// A step that failed or was suppressed counts as done: "at most one notice
// per step" holds even when a step's notice could not go out, and the
// policy moves on to its next step in due time.
func (r Record) DelayStepsDone() int {
	done := 0
	for _, e := range r.Outbox {
		if e.Status.Final() && e.Step < FinalNoticeStep {
			done = max(done, e.Step)
		}
	}
	for _, n := range r.Notices {
		if n.Step < FinalNoticeStep {
			done = max(done, n.Step)
		}
	}
	return done
}

// LastNotice is when the latest notice about the record was sent; zero
// when none was.
func (r Record) LastNotice() time.Time {
	var last time.Time
	for _, n := range r.Notices {
		if n.At.After(last) {
			last = n.At
		}
	}
	return last
}

// Outbox operations; the names appear in errors.
const (
	opClaim         op = "claim notice"
	opComplete      op = "complete notice"
	opReleaseNotice op = "release notice"
)

// claimable lists the record states in which a notice may be claimed: the
// message is still undelivered and its fate undecided. A passed message was
// delivered and an expired one is answered 5xx, which makes the sender's
// MTA bounce it; a "still delayed" notice about either would be false.
var claimable = map[State]bool{Deferred: true, Released: true, Held: true}

// claimableIn reports whether step may be claimed on a record in state s:
// the "no longer delayed" notice only once the message passed, every other
// notice only while it still waits.
func claimableIn(step int, s State) bool {
	if step == ClearedNoticeStep {
		return s == Passed
	}
	return claimable[s]
}

// OutboxEntry returns the outbox entry of step, if there is one.
func (r Record) OutboxEntry(step int) (OutboxEntry, bool) {
	i := slices.IndexFunc(r.Outbox, func(e OutboxEntry) bool { return e.Step == step })
	if i < 0 {
		return OutboxEntry{}, false
	}
	return r.Outbox[i], true
}

// NoticeMessageID is the Message-ID to give the notice of step for id: the
// same on every node and every try, so that the rare duplicate the
// guarantee allows (see the package documentation) carries the Message-ID
// of the first copy, and stores and clients that drop duplicate Message-IDs
// drop it. domain is the reporting host, e.g. "mx.example.org".
func NoticeMessageID(id stamp.Identity, step int, domain string) string {
	return "<wasmilter-notice." + strconv.Itoa(step) + "." + id.String() + "@" + domain + ">"
}

// claimTransition takes the lease on step for node until now+lease if the
// step is free: never claimed, released after a temporary failure and due,
// or leased with the lease run out. won reports whether it was taken; a
// step that is not free leaves the record untouched and is not an error.
//
// A live lease refuses every node, its holder included: the lease stands
// for a send in flight, and letting the holder claim again would let two
// overlapping sweeps of one node send the same step twice.
func claimTransition(id stamp.Identity, step int, node string, lease time.Duration, at time.Time, won *bool) transition {
	at = ledgerTime(at)
	return func(cur *Record, now time.Time) (Record, bool, error) {
		*won = false
		if cur == nil {
			return Record{}, false, fmt.Errorf("%s %s step %d: %w", opClaim, id, step, ErrNotFound)
		}
		if !claimableIn(step, cur.State) {
			return Record{}, false, fmt.Errorf("%w: cannot %s step %d of message %s: it is %s", ErrTransition, opClaim, step, id, cur.State)
		}
		i := slices.IndexFunc(cur.Outbox, func(e OutboxEntry) bool { return e.Step == step })
		var e OutboxEntry
		switch {
		case i >= 0:
			e = cur.Outbox[i]
			if e.Status.Final() || at.Before(e.Until) {
				return *cur, false, nil
			}
		case slices.ContainsFunc(cur.Notices, func(n Notice) bool { return n.Step == step }):
			// Sent before the outbox knew of it: Notices is the record of
			// what senders were told, and it alone is enough to refuse.
			return *cur, false, nil
		case len(cur.Outbox) >= MaxOutbox:
			return Record{}, false, fmt.Errorf("%w: cannot %s step %d of message %s: its outbox holds %d steps already", ErrTransition, opClaim, step, id, MaxOutbox)
		default:
			e = OutboxEntry{Step: step}
		}
		e.Status, e.Node, e.Until, e.At = NoticeLeased, node, ledgerTime(at.Add(lease)), at
		e.Claims++
		next := *cur
		next.Outbox = putEntry(cur.Outbox, e)
		next.UpdatedAt = now
		*won = true
		return next, true, nil
	}
}

// completeTransition records the outcome of a claimed step.
//
// Sent is a fact, so it is recorded whoever reports it, as long as the
// step is not final: a node whose lease ran out while its relay accepted
// the notice did send it, and recording that stops a third copy. Failed is
// a judgement about one send, so only the step's holder may give it (its
// lease may have run out, as long as nobody took it over). Repeating the
// outcome already recorded, from the node that recorded it, changes
// nothing and succeeds, so a caller may retry a CompleteNotice whose answer
// it did not get.
func completeTransition(id stamp.Identity, step int, node string, at time.Time, o NoticeOutcome) transition {
	at = ledgerTime(at)
	return func(cur *Record, now time.Time) (Record, bool, error) {
		if cur == nil {
			return Record{}, false, fmt.Errorf("%s %s step %d: %w", opComplete, id, step, ErrNotFound)
		}
		e, ok := cur.OutboxEntry(step)
		switch {
		case !ok:
			return Record{}, false, fmt.Errorf("%w: %s step %d of message %s: the step was never claimed", ErrLeaseLost, opComplete, step, id)
		case e.Status.Final() && e.Status == o.Status && e.Node == node:
			return *cur, false, nil
		case e.Status.Final():
			return Record{}, false, fmt.Errorf("%w: %s step %d of message %s as %s: %s recorded it %s already", ErrLeaseLost, opComplete, step, id, o.Status, e.Node, e.Status)
		case o.Status != NoticeSent && (e.Status != NoticeLeased || e.Node != node):
			return Record{}, false, fmt.Errorf("%w: %s step %d of message %s as %s: it is %s by %s", ErrLeaseLost, opComplete, step, id, o.Status, e.Status, e.Node)
		}
		e.Status, e.Node, e.Until, e.At = o.Status, node, time.Time{}, at
		e.Error = ""
		next := *cur
		if o.Status == NoticeSent {
			kind := o.Kind
			if kind == "" {
				kind = DefaultNoticeKind
			}
			next.Notices = append(slices.Clone(cur.Notices), Notice{Step: step, At: at, Kind: kind})
		} else {
			e.Error = oneLine(o.Error)
		}
		next.Outbox = putEntry(cur.Outbox, e)
		next.UpdatedAt = now
		return next, true, nil
	}
}

// releaseNoticeTransition gives a leased step back after a temporary
// failure: it may be claimed again, by any node, from retryAt on.
func releaseNoticeTransition(id stamp.Identity, step int, node string, at, retryAt time.Time, cause string) transition {
	at = ledgerTime(at)
	return func(cur *Record, now time.Time) (Record, bool, error) {
		if cur == nil {
			return Record{}, false, fmt.Errorf("%s %s step %d: %w", opReleaseNotice, id, step, ErrNotFound)
		}
		e, ok := cur.OutboxEntry(step)
		if !ok || e.Status != NoticeLeased || e.Node != node {
			what := "the step was never claimed"
			if ok {
				what = fmt.Sprintf("it is %s by %s", e.Status, e.Node)
			}
			return Record{}, false, fmt.Errorf("%w: %s step %d of message %s: %s", ErrLeaseLost, opReleaseNotice, step, id, what)
		}
		e.Status, e.Until, e.At, e.Error = NoticePending, ledgerTime(retryAt), at, oneLine(cause)
		next := *cur
		next.Outbox = putEntry(cur.Outbox, e)
		next.UpdatedAt = now
		return next, true, nil
	}
}

// putEntry returns a copy of outbox with e in place of the entry of its
// step, or added, kept in step order so every backend stores the same.
func putEntry(outbox []OutboxEntry, e OutboxEntry) []OutboxEntry {
	out := slices.Clone(outbox) // never write into a slice the caller may hold
	i, found := slices.BinarySearchFunc(out, e.Step, func(x OutboxEntry, step int) int { return x.Step - step })
	if found {
		out[i] = e
		return out
	}
	return slices.Insert(out, i, e)
}

// oneLine makes an error text fit an admin view and the record's bound:
// SMTP replies span lines, and a relay's text is not ours to trust.
func oneLine(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	if len(s) <= MaxNoticeErrorBytes {
		return s
	}
	cut := MaxNoticeErrorBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func validateNoticeCall(id stamp.Identity, step int, node string, now time.Time) error {
	if err := validateID(id); err != nil {
		return err
	}
	if step < 1 || step > ClearedNoticeStep {
		return fmt.Errorf("%w: notice step %d: steps count from 1 and stop at %d", ErrInvalid, step, ClearedNoticeStep)
	}
	if node == "" || len(node) > MaxNodeBytes || strings.ContainsFunc(node, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: node name %q: 1 to %d bytes, no spaces or control characters", ErrInvalid, node, MaxNodeBytes)
	}
	if now.IsZero() {
		return fmt.Errorf("%w: notice operation has no time", ErrInvalid)
	}
	return nil
}

func validateClaim(id stamp.Identity, step int, node string, lease time.Duration, now time.Time) error {
	if err := validateNoticeCall(id, step, node, now); err != nil {
		return err
	}
	if lease < time.Microsecond {
		return fmt.Errorf("%w: lease %s: a lease must last at least 1µs", ErrInvalid, lease)
	}
	return nil
}

func validateOutcome(o NoticeOutcome) error {
	if o.Status != NoticeSent && o.Status != NoticeFailed && o.Status != NoticeSuppressed {
		return fmt.Errorf("%w: notice outcome %q: want %q, %q or %q", ErrInvalid, o.Status, NoticeSent, NoticeFailed, NoticeSuppressed)
	}
	if strings.ContainsAny(o.Kind, "\r\n\x00") || len(o.Kind) > 64 {
		return fmt.Errorf("%w: notice kind %q", ErrInvalid, o.Kind)
	}
	return nil
}
