//go:build wasip1

package delaynotify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/sdk"
)

// policy is the plugin's configuration, set once by Init.
type policy struct {
	steps               []time.Duration // notify_after, strictly increasing
	maxAge              time.Duration
	exact               map[string]bool // local_domains matched exactly
	parents             []string        // local_domains given as ".example.org": their subdomains, with the dot
	notifyAuthenticated bool
	delayed, held       template
	expired             template
}

var pol policy

// Defaults. max_age matches the ledger's default ([retry] max_age) and
// Postfix's maximal_queue_lifetime; the steps follow the familiar pattern
// of a first warning within the hour and daily-ish reminders.
var (
	defaultSteps  = []string{"30m", "4h", "24h"}
	defaultMaxAge = "5d"
)

const defaultDelayedText = `Your message has not been delivered yet. It is not lost: delivery is
being retried automatically, and you do not need to send it again.

Recipients:  {recipients}
First seen:  {first_seen} ({age} ago)
Attempts:    {attempts}
Last reply:  {reason}

Delivery will be retried until {retry_until}.
If it has not succeeded by then, it will be given up and you will be told.
`

const defaultHeldText = `Your message has not been delivered yet. It is not lost: it is being
held for review by the administrators of the mail system, and you do not
need to send it again.

Recipients:  {recipients}
First seen:  {first_seen} ({age} ago)
`

const defaultExpiredText = `Your message could not be delivered, and delivery has been given up.

Recipients:  {recipients}
First seen:  {first_seen} ({age} ago)
Attempts:    {attempts}
Last reply:  {reason}

It was retried for as long as this mail system keeps trying. Please check
the recipients' addresses, or reach them another way.
`

// maxTemplateBytes bounds a configured text. A notice is read by a person;
// anything longer is a mistake (a file pasted in), and the host refuses
// notice texts past abi.DefaultLimits.MaxHeaderValue.
const maxTemplateBytes = 8 << 10

func configure(cfg sdk.Config) error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config key %q: "+format, append([]any{key}, args...)...))
	}

	p := policy{
		exact:               map[string]bool{},
		notifyAuthenticated: cfg.Bool("notify_authenticated", true),
	}

	maxAgeText := cfg.String("max_age", defaultMaxAge)
	maxAge, err := parseDuration(maxAgeText)
	if err != nil || maxAge <= 0 {
		fail("max_age", "%q is not a positive duration such as \"5d\" or \"36h\"", maxAgeText)
		maxAge = 0 // judge the steps without it rather than against a bad value
	}
	p.maxAge = maxAge

	for i, s := range cfg.Strings("notify_after", defaultSteps) {
		d, err := parseDuration(s)
		switch {
		case err != nil || d <= 0:
			fail("notify_after", "step %d: %q is not a positive duration such as \"30m\", \"4h\" or \"1d\"", i+1, s)
			continue
		case len(p.steps) > 0 && d <= p.steps[len(p.steps)-1]:
			fail("notify_after", "step %d (%s) does not come after step %d (%s): the steps must increase", i+1, s, i, formatStep(p.steps[len(p.steps)-1]))
			continue
		case maxAge > 0 && d >= maxAge:
			fail("notify_after", "step %d (%s) is not before max_age (%s): the message is given up first, so it would never be sent", i+1, s, formatStep(maxAge))
			continue
		}
		p.steps = append(p.steps, d)
	}

	for _, d := range cfg.Strings("local_domains", nil) {
		name, parent, err := parseDomain(d)
		if err != nil {
			fail("local_domains", "%v", err)
			continue
		}
		if parent {
			p.parents = append(p.parents, "."+name)
		} else {
			p.exact[name] = true
		}
	}

	for _, t := range []struct {
		key, def string
		ifBlank  string // why a blank text is refused: what to do instead
		into     *template
	}{
		{"text.delayed", defaultDelayedText, "to send no delay notices, set notify_after = []", &p.delayed},
		{"text.held", defaultHeldText, "to send no delay notices, set notify_after = []", &p.held},
		// An empty final text expires without a notice: a choice an
		// operator may make, unlike an empty delay notice.
		{"text.expired", defaultExpiredText, "set it to \"\" to give up without a final notice", &p.expired},
	} {
		text := cfg.String(t.key, t.def)
		allowedEmpty := t.key == "text.expired" && text == ""
		if strings.TrimSpace(text) == "" && !allowedEmpty {
			fail(t.key, "the text is blank (%s)", t.ifBlank)
			continue
		}
		tmpl, err := parseTemplate(text)
		if err != nil {
			fail(t.key, "%v", err)
			continue
		}
		*t.into = tmpl
	}

	// The getters' own complaints (a list where one value belongs, a bad
	// boolean) come first: they are about the same keys.
	if err := errors.Join(cfg.Err(), errors.Join(errs...)); err != nil {
		return err
	}
	pol = p
	return nil
}

// isLocal reports whether a sender domain is one of local_domains.
func (p *policy) isLocal(domain string) bool {
	if domain == "" {
		return false
	}
	if p.exact[domain] {
		return true
	}
	for _, parent := range p.parents {
		if strings.HasSuffix(domain, parent) {
			return true
		}
	}
	return false
}

// parseDomain checks a local_domains entry and returns it lowercased; a
// leading dot (Postfix's convention) means "its subdomains".
func parseDomain(s string) (name string, parent bool, err error) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	name, parent = strings.CutPrefix(name, ".")
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return "", false, fmt.Errorf("%q is not a domain", s)
	}
	for _, c := range []byte(name) {
		ok := c == '-' || c == '.' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c >= 0x80
		if !ok {
			return "", false, fmt.Errorf("%q is not a domain (give the domain only, e.g. \"example.org\", not an address)", s)
		}
	}
	return name, parent, nil
}

// parseDuration reads a Go duration ("30m", "4h") or whole days with an
// optional rest ("5d", "1d12h"): the syntax of wasmilter's own config
// (config.Duration), so the same values work in [retry] and here.
// sdk.Config.Duration has no days, hence this.
func parseDuration(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	total := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += r
	}
	return total, nil
}

// formatStep writes a duration the way it would be configured.
func formatStep(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
