package dsn

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// report is a Notice that passed validation, with every default filled in
// and every text normalised; Compose only formats it.
type report struct {
	host       string        // the reporting MTA's DNS name
	from, to   *mail.Address // header fields of the notice
	subject    string
	messageID  string // without angle brackets
	date       time.Time
	arrival    time.Time
	envelopeID string
	recipients []Recipient
	humanText  string // CRLF line endings
	original   []byte // the quoted original header, "Name: value\r\n"...
}

// check validates n and returns the report to format. Every error wraps
// ErrInvalid and names the offending field.
func (n Notice) check() (*report, error) {
	host, err := reportingHost(n.ReportingMTA)
	if err != nil {
		return nil, err
	}
	r := &report{host: host, date: n.Date, arrival: n.ArrivalDate, recipients: n.Recipients}
	if n.Date.IsZero() {
		return nil, invalid("Date is required (the caller's clock keeps Compose pure)")
	}
	if r.to, err = envelopeSenderAddress(n.To); err != nil {
		return nil, err
	}
	if r.from, err = fromAddress(n.From, host); err != nil {
		return nil, err
	}
	if r.subject, err = subject(n.Subject, n.Recipients); err != nil {
		return nil, err
	}
	if r.messageID, err = messageID(n.MessageID, host); err != nil {
		return nil, err
	}
	if r.envelopeID, err = envelopeID(n.OriginalEnvelopeID); err != nil {
		return nil, err
	}
	if err := checkRecipients(n.Recipients); err != nil {
		return nil, err
	}
	if r.humanText, err = humanText(n.HumanText, host, n.Recipients); err != nil {
		return nil, err
	}
	if r.original, err = quoteHeader(n.OriginalHeader, MaxOriginalHeaderBytes); err != nil {
		return nil, err
	}
	return r, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// hostnamePattern is a DNS name (RFC 1123 labels) or an address literal.
var hostnamePattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$`)

// reportingHost takes "mx.example.org" or "dns; mx.example.org" and
// returns the host name. Only the "dns" MTA-name type (RFC 3464 §2.1.2) is
// accepted: wasmilter reports from an Internet host.
func reportingHost(s string) (string, error) {
	name := s
	if typ, rest, ok := strings.Cut(s, ";"); ok {
		if !strings.EqualFold(strings.TrimSpace(typ), "dns") {
			return "", invalid("ReportingMTA %q: only the \"dns\" name type is supported", s)
		}
		name = rest
	}
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return "", invalid("ReportingMTA is required (this host's DNS name)")
	}
	if len(name) > 253 || !hostnamePattern.MatchString(name) {
		return "", invalid("ReportingMTA %q is not a DNS host name", s)
	}
	return name, nil
}

// checkEnvelopeAddress accepts an address as it appears in SMTP MAIL FROM
// or RCPT TO, without the angle brackets: printable ASCII only, so that it
// can neither break a header line nor smuggle a command.
func checkEnvelopeAddress(what, addr string) error {
	if addr == "" || addr == "<>" {
		return invalid("%s is the null address; notices are never sent to or about <>", what)
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		switch {
		case c == '\r' || c == '\n':
			return invalid("%s %q contains a line break", what, addr)
		case c < 0x20 || c == 0x7f:
			return invalid("%s %q contains a control character", what, addr)
		case c >= 0x80:
			return invalid("%s %q is not ASCII (RFC 6533 internationalised notices are not supported)", what, addr)
		case c == '<' || c == '>':
			return invalid("%s %q: give the address without angle brackets", what, addr)
		}
	}
	if len(addr) > 256 {
		return invalid("%s is %d octets long; RFC 5321 §4.5.3.1.3 allows 256", what, len(addr))
	}
	return nil
}

// envelopeSenderAddress checks the original envelope sender, who receives
// the notice.
func envelopeSenderAddress(to string) (*mail.Address, error) {
	if err := checkEnvelopeAddress("To (the original envelope sender)", to); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(to)
	if err != nil {
		return nil, invalid("To %q is not an RFC 5322 address: %v", to, err)
	}
	return a, nil
}

// fromAddress parses the notice's From, or makes the conventional
// MAILER-DAEMON address at the reporting host.
func fromAddress(from, host string) (*mail.Address, error) {
	if from == "" {
		return &mail.Address{Address: "MAILER-DAEMON@" + host}, nil
	}
	if strings.ContainsAny(from, "\r\n") {
		return nil, invalid("From %q contains a line break", from)
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, invalid("From %q is not an RFC 5322 address: %v", from, err)
	}
	return a, nil
}

// subject returns the given subject or the default for the actions.
func subject(s string, rs []Recipient) (string, error) {
	if s == "" {
		return DefaultSubject(rs), nil
	}
	if !utf8.ValidString(s) {
		return "", invalid("Subject is not valid UTF-8")
	}
	if i := strings.IndexFunc(s, isControlNotTab); i >= 0 {
		return "", invalid("Subject %q contains a control character (CR, LF or other) at %d", s, i)
	}
	return s, nil
}

func isControlNotTab(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

// msgIDPattern is id-left "@" id-right in the dot-atom form RFC 5322 §3.6.4
// recommends.
var msgIDPattern = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~.\[\]:-]+$`)

// messageID normalises the given Message-ID or makes a random one.
func messageID(id, host string) (string, error) {
	if id == "" {
		return randomToken() + "@" + host, nil
	}
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if len(id) > 900 || !msgIDPattern.MatchString(id) {
		return "", invalid("MessageID %q is not of the form <left@right>", id)
	}
	return id, nil
}

// envelopeID checks the ENVID: RFC 3461 §4.4 allows printable ASCII only.
func envelopeID(id string) (string, error) {
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return "", invalid("OriginalEnvelopeID %q: only printable ASCII without spaces is allowed (RFC 3461 §4.4)", id)
		}
	}
	if len(id) > 100 {
		return "", invalid("OriginalEnvelopeID is %d octets; RFC 3461 §4.4 allows 100", len(id))
	}
	return id, nil
}

// checkRecipients validates every recipient's fields.
func checkRecipients(rs []Recipient) error {
	if len(rs) == 0 {
		return invalid("a notice reports on at least one recipient")
	}
	for i, r := range rs {
		if err := r.check(); err != nil {
			return fmt.Errorf("recipient %d: %w", i+1, err)
		}
	}
	return nil
}

func (r Recipient) check() error {
	if err := checkEnvelopeAddress("Address", r.Address); err != nil {
		return err
	}
	classes, ok := statusClass[r.Action]
	if !ok {
		return invalid("Action %q is not one of delayed, failed, delivered, relayed", r.Action)
	}
	if err := checkStatus(r.Status, classes, r.Action); err != nil {
		return err
	}
	if err := checkDiagnostic(r.Diagnostic); err != nil {
		return err
	}
	if !r.WillRetryUntil.IsZero() && r.Action != Delayed {
		return invalid("WillRetryUntil is only meaningful for Action delayed (RFC 3464 §2.3.8), not %s", r.Action)
	}
	return nil
}

// statusPattern is an RFC 3463 status code: class.subject.detail.
var statusPattern = regexp.MustCompile(`^([245])\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})$`)

func checkStatus(status, classes string, a Action) error {
	m := statusPattern.FindStringSubmatch(status)
	if m == nil {
		return invalid("Status %q is not an RFC 3463 code like 4.7.1", status)
	}
	if !strings.Contains(classes, m[1]) {
		return invalid("Status %s contradicts Action %s (which takes %s.x.x)", status, a, strings.Join(strings.Split(classes, ""), ".x.x or "))
	}
	return nil
}

// diagnosticPattern is "type; text" (RFC 3464 §2.3.6): an atom, a
// semicolon, then printable ASCII on one line.
var diagnosticPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*[ \t]*;[ \t]*[\x20-\x7e\t]*$`)

// maxDiagnostic keeps "Diagnostic-Code: " plus the value within RFC 5322's
// 998-octet line.
const maxDiagnostic = 998 - len("Diagnostic-Code: ")

func checkDiagnostic(d string) error {
	if d == "" {
		return nil
	}
	if strings.ContainsAny(d, "\r\n") {
		return invalid("Diagnostic %q contains a line break (join a multi-line reply, see SMTPDiagnostic)", d)
	}
	if !diagnosticPattern.MatchString(d) {
		return invalid("Diagnostic %q is not \"type; text\" in printable ASCII, e.g. \"smtp; 451 4.7.1 Greylisted\"", d)
	}
	if len(d) > maxDiagnostic {
		return invalid("Diagnostic is %d octets; at most %d fit on one line", len(d), maxDiagnostic)
	}
	return nil
}

// SMTPDiagnostic formats an SMTP reply as a Diagnostic-Code value, e.g.
// SMTPDiagnostic(451, "4.7.1", "Greylisted") = "smtp; 451 4.7.1 Greylisted".
// Line breaks of a multi-line reply become spaces, characters outside
// printable ASCII become '?', and the result is cut to fit one line, so the
// value always passes Compose's checks.
func SMTPDiagnostic(code int, enhanced, text string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "smtp; %03d", code)
	for _, part := range []string{enhanced, text} {
		if part = printableASCII(part); part != "" {
			b.WriteString(" " + part)
		}
	}
	s := b.String()
	if len(s) > maxDiagnostic {
		s = s[:maxDiagnostic]
	}
	return s
}

// printableASCII folds whitespace runs to one space and replaces anything
// else outside printable ASCII with '?'.
func printableASCII(s string) string {
	fields := strings.Fields(s)
	for i, f := range fields {
		fields[i] = strings.Map(func(r rune) rune {
			if r < 0x21 || r > 0x7e {
				return '?'
			}
			return r
		}, f)
	}
	return strings.Join(fields, " ")
}
