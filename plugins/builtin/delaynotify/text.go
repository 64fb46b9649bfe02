//go:build wasip1

package delaynotify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wasmilter/wasmilter/sdk"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// placeholder names a value a text template takes.
type placeholder int

const (
	literal placeholder = iota
	phAge
	phFirstSeen
	phLastSeen
	phRetryUntil
	phAttempts
	phReason
	phRecipients
	phSender
	phSubject
)

var placeholderNames = map[string]placeholder{
	"age": phAge, "first_seen": phFirstSeen, "last_seen": phLastSeen, "retry_until": phRetryUntil,
	"attempts": phAttempts, "reason": phReason, "recipients": phRecipients, "sender": phSender,
	"subject": phSubject,
}

// knownPlaceholders lists the names for error messages, in the order the
// documentation gives them.
const knownPlaceholders = "{age} {first_seen} {last_seen} {retry_until} {attempts} {reason} {recipients} {sender} {subject}"

// values are what the placeholders stand for in one notice.
type values struct {
	age, firstSeen, lastSeen, retryUntil string
	attempts, reason, recipients         string
	sender, subject                      string
}

func (v *values) get(ph placeholder) string {
	switch ph {
	case phAge:
		return v.age
	case phFirstSeen:
		return v.firstSeen
	case phLastSeen:
		return v.lastSeen
	case phRetryUntil:
		return v.retryUntil
	case phAttempts:
		return v.attempts
	case phReason:
		return v.reason
	case phRecipients:
		return v.recipients
	case phSender:
		return v.sender
	case phSubject:
		return v.subject
	}
	return ""
}

// segment is a piece of a template: literal text, or a placeholder.
type segment struct {
	text string
	ph   placeholder
}

// template is a notice text parsed once at Init, so a typo in a placeholder
// stops the plugin from starting instead of reaching a sender.
type template struct {
	segs []segment
}

// parseTemplate splits s into literal text and {name} placeholders. Only
// "{" + lowercase letters/underscores + "}" is a placeholder; any other
// brace is literal, so texts need no escaping.
func parseTemplate(s string) (template, error) {
	if len(s) > maxTemplateBytes {
		return template{}, fmt.Errorf("the text is %d bytes, more than %d", len(s), maxTemplateBytes)
	}
	if !utf8.ValidString(s) {
		return template{}, fmt.Errorf("the text is not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		// The host refuses a notice with other control characters
		// (abi.Validate); better to say so now than at the first notice.
		if c := s[i]; (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return template{}, fmt.Errorf("the text has control character %#02x at byte %d", c, i)
		}
	}
	var t template
	lit := 0 // start of the pending literal
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		end := i + 1
		for end < len(s) && (s[end] == '_' || 'a' <= s[end] && s[end] <= 'z') {
			end++
		}
		if end == i+1 || end == len(s) || s[end] != '}' {
			continue // not a placeholder: a literal brace
		}
		name := s[i+1 : end]
		ph, ok := placeholderNames[name]
		if !ok {
			return template{}, fmt.Errorf("unknown placeholder {%s}; known are %s", name, knownPlaceholders)
		}
		if lit < i {
			t.segs = append(t.segs, segment{text: s[lit:i]})
		}
		t.segs = append(t.segs, segment{ph: ph})
		lit = end + 1
		i = end
	}
	if lit < len(s) {
		t.segs = append(t.segs, segment{text: s[lit:]})
	}
	return t, nil
}

// maxNoticeBytes is what the host accepts as a notice text.
var maxNoticeBytes = abi.DefaultLimits.MaxHeaderValue

// render fills in the placeholders. The result always passes the host's
// validation: values are cleaned of control characters, and the whole is
// cut (at a character boundary) to the host's limit.
func (t template) render(v values) string {
	var b strings.Builder
	for _, s := range t.segs {
		if s.ph == literal {
			b.WriteString(s.text)
		} else {
			b.WriteString(clean(v.get(s.ph), valueLimit(s.ph)))
		}
	}
	return cut(b.String(), maxNoticeBytes)
}

// maxValueBytes bounds one filled-in value (a reply text is at most 450
// bytes, an address 512); the recipient list has its own bound.
const maxValueBytes = 512

// valueLimit is the bound of one placeholder's value. {recipients} names up
// to maxListedRecipients addresses, each already bounded, so cutting the
// list again could only chop an address in half.
func valueLimit(ph placeholder) int {
	if ph == phRecipients {
		return maxListedRecipients*(maxValueBytes+4) + 32
	}
	return maxValueBytes
}

// clean makes a value safe to put in a one-line slot of the notice: invalid
// UTF-8 and control characters (a folded Subject's CR LF, a tab) become
// spaces, and it is cut to limit bytes.
func clean(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return cut(strings.Join(strings.Fields(s), " "), limit)
}

// cut shortens s to at most limit bytes without splitting a character.
func cut(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:limit]
}

// maxListedRecipients is how many recipients {recipients} names; the rest
// are counted. The notice's delivery-status part lists them all anyway.
const maxListedRecipients = 10

func formatRecipients(rs []sdk.Recipient) string {
	if len(rs) == 0 {
		return "(unknown)"
	}
	var b strings.Builder
	for i, r := range rs {
		if i == maxListedRecipients {
			fmt.Fprintf(&b, " and %d more", len(rs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("<" + clean(r.Addr, maxValueBytes) + ">")
	}
	return b.String()
}

// formatReason writes the last reply as the sender's MTA would have logged
// it: "451 4.7.1 Greylisted, please try again".
func formatReason(r abi.Reply) string {
	var parts []string
	if r.Code != 0 {
		parts = append(parts, strconv.Itoa(r.Code))
	}
	if r.Enhanced != "" {
		parts = append(parts, r.Enhanced)
	}
	if r.Text != "" {
		parts = append(parts, r.Text)
	}
	if len(parts) == 0 {
		return "(none recorded)"
	}
	return strings.Join(parts, " ")
}

// dateLayout is the RFC 5322 date, as in the notice's own Date and
// delivery-status fields, so a reader can match them up.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// formatDate writes t in UTC: the sandbox has no time zone database, and a
// notice crosses time zones anyway.
func formatDate(t time.Time) string { return t.UTC().Format(dateLayout) }

// humanDuration writes an age for a person: the two largest units, rounded
// down to the minute ("1 day 4 hours", "35 minutes").
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	units := []struct {
		name string
		size time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}}
	var parts []string
	for _, u := range units {
		n := d / u.size
		d -= n * u.size
		if n == 0 {
			if len(parts) > 0 {
				break // "1 day 5 minutes" says less than "1 day"
			}
			continue
		}
		parts = append(parts, plural(int64(n), u.name))
		if len(parts) == 2 {
			break
		}
	}
	return strings.Join(parts, " ")
}

func plural(n int64, unit string) string {
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
