package retry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// This file is the state machine as pure functions: given the stored record
// (nil when there is none) and the ledger's clock, each transition returns
// the record to store. Backends run one transition inside one atomic
// operation on their store (a bbolt write transaction; for Redis, a
// WATCH/MULTI/EXEC transaction retried on conflict), so no backend
// re-implements a rule and no update is lost between a read and a write.

// op names an operation that changes a record.
type op string

const (
	opDefer   op = "defer"
	opPass    op = "pass"
	opRelease op = "release"
	opHold    op = "hold"
	opExpire  op = "expire"
)

// none stands for "no record stored" in the machine table.
const none State = ""

// machine is the state machine: for each operation, the states it may start
// from and the state it leads to. Anything missing is ErrTransition (or
// ErrNotFound from none). doc.go shows the same table; a test keeps the two
// in step.
var machine = map[op]map[State]State{
	opDefer: {
		none:     Deferred,
		Deferred: Deferred,
		Passed:   Deferred, // the same message sent again after it passed
		Released: Released, // the attempt counts; the admin's release stands
		Held:     Held,     // the attempt counts; the hold stands
	},
	opPass:    {Deferred: Passed, Released: Passed, Passed: Passed},
	opRelease: {Deferred: Released, Held: Released, Released: Released},
	opHold:    {Deferred: Held, Released: Held, Held: Held},
	opExpire:  {Deferred: Expired, Released: Expired, Held: Expired, Expired: Expired},
}

// transition computes the record to store from the stored one (nil: none).
// changed is false when the stored record is already what was asked for, so
// the backend may skip the write.
type transition func(cur *Record, now time.Time) (next Record, changed bool, err error)

// applyTransition runs t with the clock reading normalized as every stored
// time is (see ledgerTime). Backends call transitions only through it.
func applyTransition(t transition, cur *Record, now time.Time) (Record, bool, error) {
	return t(cur, ledgerTime(now))
}

// nextState looks the operation up in the machine.
func nextState(o op, id stamp.Identity, cur *Record) (State, error) {
	from := none
	if cur != nil {
		from = cur.State
	}
	to, ok := machine[o][from]
	switch {
	case ok:
		return to, nil
	case cur == nil:
		return none, fmt.Errorf("%s %s: %w", o, id, ErrNotFound)
	default:
		return none, fmt.Errorf("%w: cannot %s message %s: it is %s", ErrTransition, o, id, from)
	}
}

func deferTransition(d Deferral) transition {
	return func(cur *Record, now time.Time) (Record, bool, error) {
		to, err := nextState(opDefer, d.ID, cur)
		if err != nil {
			return Record{}, false, err
		}
		a := normalizeAttempt(d.Attempt)
		if cur == nil {
			return newRecord(d, a, now), true, nil
		}
		next := *cur
		next.State = to
		addAttempt(&next, a)
		if d.AuthUser != "" {
			next.AuthUser = d.AuthUser
		}
		next.UpdatedAt = now
		return next, true, nil
	}
}

// newRecord is a record's creation: the only place FirstSeen is written.
func newRecord(d Deferral, a Attempt, now time.Time) Record {
	first := d.FirstSeen
	if first.IsZero() {
		first = a.At
	}
	headers, truncated := boundHeaders(d.Headers)
	return Record{
		ID:         d.ID,
		FirstSeen:  ledgerTime(first),
		LastSeen:   a.At,
		State:      Deferred,
		Attempts:   1,
		History:    []Attempt{a},
		Sender:     d.Sender,
		Recipients: slices.Clone(d.Recipients),
		AuthUser:   d.AuthUser,
		Headers:    headers,
		Truncated:  truncated,
		UpdatedAt:  now,
	}
}

func passTransition(id stamp.Identity, a Attempt) transition {
	return func(cur *Record, now time.Time) (Record, bool, error) {
		to, err := nextState(opPass, id, cur)
		if err != nil {
			return Record{}, false, err
		}
		next := *cur
		next.State = to
		addAttempt(&next, normalizeAttempt(a))
		next.UpdatedAt = now
		return next, true, nil
	}
}

// adminTransition is Release and Hold: a state change with no attempt.
func adminTransition(o op, id stamp.Identity) transition {
	return func(cur *Record, now time.Time) (Record, bool, error) {
		to, err := nextState(o, id, cur)
		if err != nil {
			return Record{}, false, err
		}
		if cur.State == to {
			return *cur, false, nil
		}
		next := *cur
		next.State = to
		next.UpdatedAt = now
		return next, true, nil
	}
}

func expireTransition(id stamp.Identity, at time.Time, r Reason) transition {
	return func(cur *Record, now time.Time) (Record, bool, error) {
		to, err := nextState(opExpire, id, cur)
		if err != nil {
			return Record{}, false, err
		}
		if cur.State == Expired {
			// Expiry is final and told once: a second expiry (the
			// sweeper racing an arrival) keeps the first answer.
			return *cur, false, nil
		}
		next := *cur
		next.State = to
		next.ExpiredAt = ledgerTime(at)
		next.ExpiredReason = r
		next.UpdatedAt = now
		return next, true, nil
	}
}

// addAttempt counts a and keeps it in the bounded history: the first
// attempt stays, the oldest of the others goes.
func addAttempt(rec *Record, a Attempt) {
	rec.Attempts++
	if a.At.After(rec.LastSeen) {
		rec.LastSeen = a.At
	}
	h := slices.Clone(rec.History) // never write into a slice the caller may hold
	if len(h) >= MaxHistory {
		h = slices.Delete(h, 1, len(h)-MaxHistory+2)
	}
	rec.History = append(h, a)
}

// headerSize is a field's size as written in a message: "Name: value\r\n".
func headerSize(h Header) int { return len(h.Name) + len(h.Value) + 4 }

// boundHeaders keeps the leading fields that fit in MaxHeaderBytes. It stops
// at the first field that does not fit rather than skipping it, so the
// stored header is always a prefix of the original, in order.
func boundHeaders(hs []Header) ([]Header, bool) {
	total := 0
	for i, h := range hs {
		total += headerSize(h)
		if total > MaxHeaderBytes {
			return slices.Clone(hs[:i]), true
		}
	}
	return slices.Clone(hs), false
}

func normalizeAttempt(a Attempt) Attempt {
	a.At = ledgerTime(a.At)
	return a
}

// Input validation. Bad input is refused with ErrInvalid before any store
// is touched.

var enhancedCode = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// validateReason checks that r is an answer of the given class (2, 4 or 5);
// optional allows the zero Reason (an attempt whose answer is not known).
func validateReason(r Reason, class int, optional bool) error {
	if optional && r == (Reason{}) {
		return nil
	}
	if r.Code/100 != class {
		return fmt.Errorf("%w: reply code %d is not %dxx", ErrInvalid, r.Code, class)
	}
	if r.Enhanced != "" && (!enhancedCode.MatchString(r.Enhanced) || int(r.Enhanced[0]-'0') != class) {
		return fmt.Errorf("%w: enhanced status code %q is not %d.x.x", ErrInvalid, r.Enhanced, class)
	}
	if strings.ContainsAny(r.Text, "\r\n\x00") {
		return fmt.Errorf("%w: reply text contains CR, LF or NUL", ErrInvalid)
	}
	return nil
}

func validateID(id stamp.Identity) error {
	if id.IsZero() {
		return fmt.Errorf("%w: zero message identity", ErrInvalid)
	}
	return nil
}

func validateAttempt(a Attempt, class int, optional bool) error {
	if a.At.IsZero() {
		return fmt.Errorf("%w: attempt has no time", ErrInvalid)
	}
	if err := validateReason(a.Reason, class, optional); err != nil {
		return fmt.Errorf("attempt: %w", err)
	}
	return nil
}

// ValidAuthUser reports whether name can be kept as Record.AuthUser: at
// most MaxAuthUserBytes, no CR, LF or NUL ("" is valid: not authenticated).
func ValidAuthUser(name string) bool {
	return len(name) <= MaxAuthUserBytes && !strings.ContainsAny(name, "\r\n\x00")
}

func validateDeferral(d Deferral) error {
	if err := validateID(d.ID); err != nil {
		return err
	}
	if !ValidAuthUser(d.AuthUser) {
		return fmt.Errorf("%w: login name: at most %d bytes, no CR, LF or NUL", ErrInvalid, MaxAuthUserBytes)
	}
	return validateAttempt(d.Attempt, 4, false)
}

func validateExpiry(id stamp.Identity, at time.Time, r Reason) error {
	if err := validateID(id); err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("%w: expiry has no time", ErrInvalid)
	}
	return validateReason(r, 5, false)
}

func validateFilter(f Filter) error {
	if f.State != "" && !f.State.Valid() {
		return fmt.Errorf("%w: unknown state %q", ErrInvalid, f.State)
	}
	if f.Limit < 0 {
		return fmt.Errorf("%w: negative list limit %d", ErrInvalid, f.Limit)
	}
	return nil
}

func validatePurge(p PurgeFilter) error {
	if len(p.States) == 0 {
		return fmt.Errorf("%w: purge names no state", ErrInvalid)
	}
	for _, s := range p.States {
		if !s.Valid() {
			return fmt.Errorf("%w: unknown state %q", ErrInvalid, s)
		}
	}
	if p.UpdatedBefore.IsZero() {
		return fmt.Errorf("%w: purge has no UpdatedBefore time", ErrInvalid)
	}
	return nil
}
