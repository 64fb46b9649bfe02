package retry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Policy owns the time rules, so that every backend, the sweeper and the
// pipeline agree on them. The zero value is usable: every zero field means
// its default.
type Policy struct {
	// MaxAge is how long after FirstSeen a deferred message may still be
	// deferred; after it, the message is expired. Default 5 days, Postfix's
	// maximal_queue_lifetime: a sender's MTA gives up about then anyway.
	MaxAge time.Duration
	// KeepPassed is how long a passed record is kept for audit. Default 7 days.
	KeepPassed time.Duration
	// KeepExpired is how long an expired record is kept, answering every
	// late retry with the permanent error. Default 7 days.
	KeepExpired time.Duration
	// ExpiredText is the text of the 550 5.4.7 answer; "%s" is replaced by
	// MaxAge in words. Default DefaultExpiredText.
	ExpiredText string
}

// Policy defaults.
const (
	DefaultMaxAge      = 5 * 24 * time.Hour
	DefaultKeepPassed  = 7 * 24 * time.Hour
	DefaultKeepExpired = 7 * 24 * time.Hour
	DefaultExpiredText = "Message expired: it was deferred for more than %s"
)

// ExpiredCode and ExpiredEnhanced are the permanent answer of an expired
// record: RFC 3463 X.4.7 is "delivery time expired".
const (
	ExpiredCode     = 550
	ExpiredEnhanced = "5.4.7"
)

// Action is what the pipeline does with a known message that arrives again.
type Action int

const (
	// Continue: nothing special; the plugins decide.
	Continue Action = iota
	// Pass: an admin released it; let it through and call Ledger.Pass.
	Pass
	// Hold: it is held; quarantine it (the MTA's hold queue).
	Hold
	// Expire: answer Decision.Reply (550 5.4.7) and call Ledger.Expire
	// unless the record is already expired.
	Expire
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Pass:
		return "pass"
	case Hold:
		return "hold"
	case Expire:
		return "expire"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is Policy.OnArrival's answer.
type Decision struct {
	Action Action
	Reply  Reason // set for Expire: the permanent answer to give
}

// Validate reports a policy that cannot be applied.
func (p Policy) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"max_age", p.MaxAge}, {"keep_passed", p.KeepPassed}, {"keep_expired", p.KeepExpired}} {
		if f.d < 0 {
			return fmt.Errorf("retry policy: %s is negative (%s)", f.name, f.d)
		}
	}
	if strings.ContainsAny(p.ExpiredText, "\r\n\x00") {
		return fmt.Errorf("retry policy: expired_text contains CR, LF or NUL")
	}
	return nil
}

func (p Policy) maxAge() time.Duration      { return orDefault(p.MaxAge, DefaultMaxAge) }
func (p Policy) keepPassed() time.Duration  { return orDefault(p.KeepPassed, DefaultKeepPassed) }
func (p Policy) keepExpired() time.Duration { return orDefault(p.KeepExpired, DefaultKeepExpired) }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// OnArrival says what to do when a message with a record arrives again.
// An expired record, or a deferred one older than MaxAge, is always
// answered with the permanent error: never silence, and never an endless
// loop of 4xx. A held record stays held whatever its age: the admin decides.
func (p Policy) OnArrival(rec Record, now time.Time) Decision {
	switch rec.State {
	case Released:
		return Decision{Action: Pass}
	case Held:
		return Decision{Action: Hold}
	case Expired:
		return Decision{Action: Expire, Reply: p.expiredReply(rec)}
	case Deferred:
		if p.TooOld(rec, now) {
			return Decision{Action: Expire, Reply: p.ExpiredReason()}
		}
	}
	return Decision{Action: Continue}
}

// RetryUntil is when rec is given up: FirstSeen plus MaxAge, the time a
// delay notice promises as Will-Retry-Until.
func (p Policy) RetryUntil(rec Record) time.Time { return rec.FirstSeen.Add(p.maxAge()) }

// TooOld reports whether rec was first seen more than MaxAge before now.
// The sweeper expires deferred records by the same rule.
func (p Policy) TooOld(rec Record, now time.Time) bool {
	return now.Sub(rec.FirstSeen) > p.maxAge()
}

// expiredReply is the answer a record got when it expired, so that every
// later attempt hears the same thing.
func (p Policy) expiredReply(rec Record) Reason {
	if rec.ExpiredReason.Code != 0 {
		return rec.ExpiredReason
	}
	return p.ExpiredReason()
}

// ExpiredReason is the permanent answer for a message that expires now.
func (p Policy) ExpiredReason() Reason {
	text := p.ExpiredText
	if text == "" {
		text = DefaultExpiredText
	}
	// Replace rather than fmt.Sprintf: an admin's text with a stray "%d"
	// must come out as written, not as "%!d(MISSING)".
	text = strings.Replace(text, "%s", inWords(p.maxAge()), 1)
	return Reason{Code: ExpiredCode, Enhanced: ExpiredEnhanced, Text: text}
}

// Purges are the purge filters that keep the ledger to its policy: passed
// records after KeepPassed, expired ones after KeepExpired.
func (p Policy) Purges(now time.Time) []PurgeFilter {
	return []PurgeFilter{
		{States: []State{Passed}, UpdatedBefore: now.Add(-p.keepPassed())},
		{States: []State{Expired}, UpdatedBefore: now.Add(-p.keepExpired())},
	}
}

// inWords renders a duration the way a sender reads it: "5 days", "4 hours".
func inWords(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	switch {
	case d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return d.String()
}
