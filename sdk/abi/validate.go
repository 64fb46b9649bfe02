package abi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits bound what the host accepts from a guest.
type Limits struct {
	MaxAnswerBytes   int // an encoded answer
	MaxActions       int // actions in one answer
	MaxArgs          int // ESMTP arguments of one action
	MaxHeaderName    int // bytes
	MaxHeaderValue   int // bytes
	MaxReplyText     int // bytes
	MaxAddress       int // bytes of an envelope address
	MaxQuarantineMsg int // bytes of a quarantine reason
}

// DefaultLimits are generous for any real policy and small enough that a
// hostile plugin cannot make the host or the MTA hold much. A reply line is
// at most 512 bytes in SMTP (RFC 5321 4.5.3.1.5), hence the reply text bound.
var DefaultLimits = Limits{
	MaxAnswerBytes:   1 << 20,
	MaxActions:       1000,
	MaxArgs:          32,
	MaxHeaderName:    128,
	MaxHeaderValue:   32 << 10,
	MaxReplyText:     450,
	MaxAddress:       512,
	MaxQuarantineMsg: 450,
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid answer")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks an answer a plugin returned from hook h: the verdict fits
// the hook, reply codes are in range and match the verdict, no text contains
// CR, LF or NUL, header names are RFC 5322 field names, and every action is
// allowed at this hook. The host applies nothing from an invalid answer.
func Validate(a *Answer, h Hook, l Limits) error {
	if err := validateVerdict(a, h); err != nil {
		return err
	}
	if err := validateReply(a.Verdict, a.Reply, l); err != nil {
		return err
	}
	if len(a.Actions) > l.MaxActions {
		return invalidf("%d actions, more than %d", len(a.Actions), l.MaxActions)
	}
	for i := range a.Actions {
		if err := validateAction(&a.Actions[i], h, l); err != nil {
			return fmt.Errorf("action %d (%s): %w", i+1, a.Actions[i].Kind, err)
		}
	}
	return nil
}

func validateVerdict(a *Answer, h Hook) error {
	if a.Verdict >= numVerdicts {
		return invalidf("unknown verdict %d", a.Verdict)
	}
	if h == HookDelay && a.Verdict != Continue {
		return invalidf("the delay hook answers with actions (notify, expire), not verdict %s", a.Verdict)
	}
	return nil
}

// validateReply checks a custom reply: only Reject and TempFail carry one,
// and its code class must match (5xx for Reject, 4xx for TempFail).
func validateReply(v Verdict, r Reply, l Limits) error {
	if r.IsZero() {
		return nil
	}
	var class int
	switch v {
	case Reject:
		class = 5
	case TempFail:
		class = 4
	default:
		return invalidf("a reply goes only with reject or tempfail, not %s", v)
	}
	if r.Code == 0 {
		return invalidf("a reply text or enhanced code needs a reply code")
	}
	if r.Code/100 != class || r.Code%100/10 > 5 {
		return invalidf("reply code %d does not fit verdict %s (want %dxx)", r.Code, v, class)
	}
	if r.Enhanced != "" {
		if err := validateEnhanced(r.Enhanced, class); err != nil {
			return err
		}
	}
	if len(r.Text) > l.MaxReplyText {
		return invalidf("reply text is %d bytes, more than %d", len(r.Text), l.MaxReplyText)
	}
	return checkText("reply text", r.Text, false)
}

// validateEnhanced checks an RFC 3463 code: class "." subject "." detail,
// the class equal to the reply code's first digit.
func validateEnhanced(s string, class int) error {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return invalidf("enhanced status code %q is not class.subject.detail", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return invalidf("enhanced status code %q: part %d is not a number from 0 to 999", s, i+1)
		}
	}
	if parts[0] != strconv.Itoa(class) {
		return invalidf("enhanced status code %q does not match reply class %dxx", s, class)
	}
	return nil
}

func validateAction(ac *Action, h Hook, l Limits) error {
	switch ac.Kind {
	case AddHeader, InsertHeader, ChangeHeader, DeleteHeader:
		if !messageHook(h) {
			return invalidf("header changes are allowed at the mail, rcpt, headers and message hooks, not %s", h)
		}
		if err := ValidateHeaderName(ac.Name, l); err != nil {
			return err
		}
		if (ac.Kind == ChangeHeader || ac.Kind == DeleteHeader) && ac.Index < 1 {
			return invalidf("header occurrence index starts at 1, got %d", ac.Index)
		}
		if ac.Kind == DeleteHeader {
			return nil
		}
		return ValidateHeaderValue(ac.Value, l)
	case Quarantine:
		if !messageHook(h) {
			return invalidf("quarantine is allowed at the mail, rcpt, headers and message hooks, not %s", h)
		}
		if ac.Value == "" || len(ac.Value) > l.MaxQuarantineMsg {
			return invalidf("quarantine reason must be 1 to %d bytes", l.MaxQuarantineMsg)
		}
		return checkText("quarantine reason", ac.Value, false)
	case ChangeFrom, AddRcpt, DelRcpt:
		if !messageHook(h) {
			return invalidf("envelope changes are allowed at the mail, rcpt, headers and message hooks, not %s", h)
		}
		return validateEnvelope(ac, l)
	case Notify, Expire:
		if h != HookDelay {
			return invalidf("%s is allowed only at the delay hook", ac.Kind)
		}
		if len(ac.Value) > l.MaxHeaderValue {
			return invalidf("notice text is %d bytes, more than %d", len(ac.Value), l.MaxHeaderValue)
		}
		return checkText("notice text", ac.Value, true)
	}
	return invalidf("unknown action kind %d", ac.Kind)
}

func validateEnvelope(ac *Action, l Limits) error {
	if ac.Kind != ChangeFrom && ac.Value == "" {
		return invalidf("recipient address is empty")
	}
	if len(ac.Value) > l.MaxAddress {
		return invalidf("address is %d bytes, more than %d", len(ac.Value), l.MaxAddress)
	}
	if strings.ContainsAny(ac.Value, "<> \t") {
		return invalidf("address %q: give it without angle brackets or spaces", ac.Value)
	}
	if err := checkText("address", ac.Value, false); err != nil {
		return err
	}
	if ac.Kind == DelRcpt && len(ac.Args) > 0 {
		return invalidf("del_rcpt takes no ESMTP arguments")
	}
	for _, a := range ac.Args {
		if a == "" || len(a) > l.MaxAddress || strings.ContainsAny(a, " \t") {
			return invalidf("ESMTP argument %q is empty, too long or has spaces", a)
		}
		if err := checkText("ESMTP argument", a, false); err != nil {
			return err
		}
	}
	return nil
}

func messageHook(h Hook) bool { return h >= HookMail && h <= HookMessage }

// ValidateHeaderName checks an RFC 5322 field name: printable US-ASCII
// except colon, 1 to MaxHeaderName bytes.
func ValidateHeaderName(name string, l Limits) error {
	if name == "" || len(name) > l.MaxHeaderName {
		return invalidf("header name must be 1 to %d bytes", l.MaxHeaderName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return invalidf("header name %q: byte %#02x is not allowed (RFC 5322 ftext)", name, c)
		}
	}
	return nil
}

// ValidateHeaderValue checks a header value: no CR, LF or NUL (the MTA folds
// long values itself; a plugin that could write CR LF could inject headers),
// at most MaxHeaderValue bytes.
func ValidateHeaderValue(v string, l Limits) error {
	if len(v) > l.MaxHeaderValue {
		return invalidf("header value is %d bytes, more than %d", len(v), l.MaxHeaderValue)
	}
	return checkText("header value", v, false)
}

// checkText refuses NUL always, and CR/LF unless multiline is allowed (notice
// texts are bodies). Other control characters except tab are refused too:
// they have no business in a reply or header and confuse logs.
func checkText(what, s string, multiline bool) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			return invalidf("%s contains NUL at byte %d", what, i)
		case c == '\r' || c == '\n':
			if !multiline {
				return invalidf("%s contains CR or LF at byte %d", what, i)
			}
		case c < 32 && c != '\t', c == 127:
			return invalidf("%s contains control character %#02x at byte %d", what, c, i)
		}
	}
	return nil
}
