//go:build wasip1

// Package delaynotify is wasmilter's default delay-notification policy,
// the builtin plugin "delaynotify" (built into the builtins module,
// plugins/builtin/builtins).
//
// The retry sweeper calls its delay hook for every message the ledger holds
// as deferred or held, with the host's clock, the message's record
// (m.Record: first seen, attempts, last reply, notices already sent) and an
// event carrying the original envelope and header. The plugin answers with
// nothing, m.Notify (send a "delayed" notice with this text) or m.Expire
// (give up, with the text of the final "failed" notice, or none).
//
// The age of a message is the host's clock minus the record's FirstSeen.
//
//   - Step K of notify_after is due when the age has reached notify_after[K]
//     and K steps are done so far (record.Notices == K: sent, refused for
//     good by the relay, or suppressed by the host's rate limit): each step
//     sends one notice, in order, however often the sweeper asks.
//   - A deferred message whose age has reached max_age is expired: the
//     sender's MTA would give up about then anyway, and a sender who is told
//     nothing more waits in silence. A held message is never expired here:
//     an administrator put it on hold and decides about it (as the ledger's
//     own policy does).
//
// Only senders who asked us to carry their mail are told anything: a sender
// in local_domains, or one who authenticated (notify_authenticated). Anyone
// else could be a forged address, and a notice to it is backscatter. So by
// default, with local_domains empty, only authenticated senders hear from
// us. Whatever the host guards as well, the plugin never notifies the null
// sender, a MAILER-DAEMON, or about a delivery report or any message with
// Auto-Submitted other than "no" (RFC 3834 §2, §5). A message expired for
// such a sender is expired without a notice text.
//
// Config keys ([plugins.config]):
//
//	notify_after         = ["30m", "4h", "24h"]  # ages at which a delay notice is sent, increasing
//	max_age              = "5d"      # a deferred message this old is given up
//	local_domains        = []        # sender domains that are told; ".example.org" also matches subdomains
//	notify_authenticated = true      # also tell senders who authenticated (SMTP AUTH)
//	text.delayed         = "..."     # the notice for a deferred message
//	text.held            = "..."     # the notice for a message held for review
//	text.expired         = "..."     # the final notice when a message is given up;
//	                                 # "" gives up without one
//
// Durations are Go durations ("30m", "4h") or whole days ("5d", "1d12h"),
// as everywhere in wasmilter's config. The texts take placeholders, filled
// in when the notice is sent:
//
//	{age}          how long ago the message was first seen ("4 hours 10 minutes")
//	{first_seen}   when it was first seen (RFC 5322 date, UTC)
//	{last_seen}    when it was last tried
//	{retry_until}  first_seen + max_age: when it will be given up
//	{attempts}     delivery attempts so far
//	{reason}       the last reply it got ("451 4.7.1 Greylisted ...")
//	{recipients}   the envelope recipients
//	{sender}       the envelope sender
//	{subject}      the message's Subject
//
// An unknown {name} is a config error (a typo would otherwise reach the
// sender verbatim); any other brace is literal text.
package delaynotify

import (
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/sdk"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Ledger states the sweeper asks about (retry.Deferred, retry.Held).
const (
	stateDeferred = "deferred"
	stateHeld     = "held"
)

// authMacro is the MTA macro holding the SASL login name; Postfix and
// Sendmail set it only for a client that authenticated.
const authMacro = "{auth_authen}"

// Plugin is the delay-notification policy, for sdk.Register.
func Plugin() sdk.Plugin { return sdk.Plugin{Init: configure, Delay: onDelay} }

func onDelay(m *sdk.Message) sdk.Verdict {
	rec, ok := m.Record()
	if !ok {
		// The sweeper only asks about records it holds; without one there
		// is no age to judge by, and guessing could expire live mail.
		m.Logf(sdk.LogWarn, "delaynotify: no ledger record for the message, nothing to decide")
		return sdk.Continue()
	}
	if rec.State != stateDeferred && rec.State != stateHeld {
		return sdk.Continue() // passed, released or expired: nobody is waiting
	}
	if rec.FirstSeen <= 0 {
		m.Logf(sdk.LogWarn, "delaynotify: record %s has no first-seen time, nothing to decide", rec.ID)
		return sdk.Continue()
	}
	now := m.Now()
	first := time.Unix(rec.FirstSeen, 0)
	age := now.Sub(first)
	if age < 0 {
		// The record comes from a node whose clock is ahead; wait for ours
		// to catch up rather than compute a nonsense age.
		return sdk.Continue()
	}

	tell, why := shouldTell(m)
	if rec.State == stateDeferred && age >= pol.maxAge {
		text := ""
		if tell {
			text = pol.expired.render(noticeValues(m, rec, age))
		} else {
			m.Logf(sdk.LogDebug, "delaynotify: expiring %s without a notice: %s", rec.ID, why)
		}
		m.Expire(text)
		return sdk.Continue()
	}
	if !tell {
		return sdk.Continue()
	}
	step := rec.Notices
	if step < 0 || step >= len(pol.steps) || age < pol.steps[step] {
		return sdk.Continue()
	}
	tmpl := pol.delayed
	if rec.State == stateHeld {
		tmpl = pol.held
	}
	m.Notify(tmpl.render(noticeValues(m, rec, age)))
	return sdk.Continue()
}

// shouldTell decides whether the sender may be sent a notice at all, and if
// not, why (for the log).
func shouldTell(m *sdk.Message) (bool, string) {
	from := m.From()
	if from == "" || from == "<>" {
		return false, "null sender"
	}
	local, domain := splitAddress(from)
	if strings.EqualFold(local, "mailer-daemon") {
		// Some systems bounce from MAILER-DAEMON@ instead of <>; a notice
		// to it would at best be dropped, at worst start a loop.
		return false, "sender is a MAILER-DAEMON"
	}
	if reason := automatic(m); reason != "" {
		return false, reason
	}
	if pol.isLocal(domain) {
		return true, ""
	}
	if pol.notifyAuthenticated {
		if login, ok := m.Macro(authMacro); ok && login != "" {
			return true, ""
		}
	}
	return false, "sender is neither in local_domains nor authenticated"
}

// automatic returns why the message was generated by a machine (a delivery
// report, an auto-reply), or "" for a message a person sent. The host's
// parsed properties are preferred: they unfold and decode the header. The
// raw header fields are the fallback when the host has none for the
// message.
func automatic(m *sdk.Message) string {
	if p, ok := m.Properties(); ok {
		switch {
		case p.IsDeliveryReport:
			return "message is a delivery report"
		case mediaType(p.ContentType) == "multipart/report":
			return "message is a report (" + p.ContentType + ")"
		case autoSubmitted(p.AutoSubmitted):
			return "message is Auto-Submitted: " + p.AutoSubmitted
		}
		return ""
	}
	h := m.Headers()
	if mediaType(h.Get("Content-Type")) == "multipart/report" {
		// Any report (delivery status, disposition, ...) is machine-made;
		// report-type need not be looked at to leave it alone.
		return "message is a report"
	}
	for _, v := range h.Values("Auto-Submitted") {
		if autoSubmitted(v) {
			return "message is Auto-Submitted: " + strings.TrimSpace(v)
		}
	}
	return ""
}

// autoSubmitted reports whether an Auto-Submitted value marks an automatic
// message: RFC 3834 §5 says not to respond to any value other than "no".
func autoSubmitted(v string) bool {
	kw := mediaType(v) // the keyword, without parameters or comment
	return kw != "" && kw != "no"
}

// mediaType returns the first token of a structured header value,
// lowercased: everything before parameters (";") or a comment ("("), with
// folding whitespace removed.
func mediaType(v string) string {
	if i := strings.IndexAny(v, ";("); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.Join(strings.Fields(v), ""))
}

// splitAddress splits an envelope address at its last "@" (a quoted local
// part may contain one) and returns the domain lowercased, without a
// trailing dot. An address without "@" has no domain.
func splitAddress(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], strings.TrimSuffix(strings.ToLower(addr[i+1:]), ".")
}

// noticeValues gathers what the text placeholders stand for.
func noticeValues(m *sdk.Message, rec abi.Record, age time.Duration) values {
	first := time.Unix(rec.FirstSeen, 0)
	v := values{
		age:        humanDuration(age),
		firstSeen:  formatDate(first),
		retryUntil: formatDate(first.Add(pol.maxAge)),
		attempts:   itoa(rec.Attempts),
		reason:     formatReason(rec.LastReason),
		recipients: formatRecipients(m.Rcpts()),
		sender:     m.From(),
		subject:    subject(m),
	}
	if rec.LastSeen > 0 {
		v.lastSeen = formatDate(time.Unix(rec.LastSeen, 0))
	} else {
		v.lastSeen = v.firstSeen
	}
	return v
}

func subject(m *sdk.Message) string {
	if p, ok := m.Properties(); ok {
		return p.Subject
	}
	return m.Headers().Get("Subject")
}
