package dsn

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// dateLayout is the RFC 5322 §3.3 date-time, which RFC 3464 uses for
// Arrival-Date, Last-Attempt-Date and Will-Retry-Until too.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

func formatDate(t time.Time) string { return t.Format(dateLayout) }

// maxLine is RFC 5322 §2.1.1's limit on a line, without its CRLF.
const maxLine = 998

// randomToken is 26 random base32 characters (130 bits): unguessable and
// valid both in a Message-ID and in a MIME boundary.
func randomToken() string { return rand.Text() }

// humanText returns the readable part's text with CRLF line endings: the
// caller's, or a default built from the recipients.
func humanText(text, host string, rs []Recipient) (string, error) {
	if text == "" {
		text = defaultHumanText(host, rs)
	}
	if !utf8.ValidString(text) {
		return "", invalid("HumanText is not valid UTF-8")
	}
	return crlf(text), nil
}

// crlf turns every line ending (CRLF, LF or a lone CR) into CRLF and ends
// the text with one.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimRight(s, "\n") + "\n"
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// defaultHumanText explains the notice in the words Postfix has made
// familiar, then lists each recipient with what happened.
func defaultHumanText(host string, rs []Recipient) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\n\n", host)
	switch worstAction(rs) {
	case Failed:
		b.WriteString("I'm sorry to have to inform you that your message could not\n" +
			"be delivered to one or more recipients, and delivery has been given up.\n")
	case Delayed:
		b.WriteString("####### THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE. #######\n\n" +
			"Your message could not be delivered yet to one or more recipients.\n" +
			"Delivery is still being attempted; you will be told if it is given up.\n")
	default:
		b.WriteString("Your message, which was delayed before, has now been passed on\n" +
			"for delivery. You do not need to do anything.\n")
	}
	b.WriteString("\nThe details follow; the header of your message is attached.\n\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "<%s>: %s", r.Address, r.Action)
		if r.Diagnostic != "" {
			fmt.Fprintf(&b, " (%s)", r.Diagnostic)
		}
		if !r.WillRetryUntil.IsZero() {
			fmt.Fprintf(&b, ", will retry until %s", formatDate(r.WillRetryUntil))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// transferEncoding picks the Content-Transfer-Encoding for a text body with
// CRLF line endings: 7bit when it already is short-lined printable ASCII,
// quoted-printable otherwise. QP keeps the whole notice 7-bit, so the MTA
// never has to downgrade it, and it decodes back to the exact bytes.
func transferEncoding(body []byte) string {
	for _, line := range bytes.Split(body, []byte("\r\n")) {
		if len(line) > maxLine {
			return "quoted-printable"
		}
		for _, c := range line {
			if (c < 0x20 && c != '\t') || c >= 0x7f {
				return "quoted-printable"
			}
		}
	}
	return "7bit"
}

// quoteHeader renders the original header for the text/rfc822-headers part:
// each field "Name: value\r\n", folding kept with CRLF line breaks, at most
// limit bytes of whole fields, in order.
func quoteHeader(hs []Header, limit int) ([]byte, error) {
	var b []byte
	for i, h := range hs {
		field, err := quoteField(h)
		if err != nil {
			return nil, fmt.Errorf("OriginalHeader field %d (%.40q): %w", i+1, h.Name, err)
		}
		if len(b)+len(field) > limit {
			// A prefix of whole fields: a cut field could be misread, and
			// the first fields (trace, Message-ID) identify the message.
			break
		}
		b = append(b, field...)
	}
	return b, nil
}

// quoteField renders one original header field. The value keeps its
// folding; a line break must be followed by a space or tab, as a header
// from the MTA always is, because otherwise the quoted header would gain a
// field the message never had. A bare CR, which SMTP forbids but mail
// carries, is quoted as a space for the same reason.
func quoteField(h Header) ([]byte, error) {
	if err := checkFieldName(h.Name); err != nil {
		return nil, err
	}
	// A line end after the value is the caller's, not part of the value.
	lines := strings.Split(strings.TrimRight(h.Value, "\r\n"), "\n")
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		lines[i] = strings.ReplaceAll(line, "\r", " ")
		if i > 0 && !strings.HasPrefix(lines[i], " ") && !strings.HasPrefix(lines[i], "\t") {
			return nil, invalid("line %d of the value does not start with a space or tab, so it would start a new field", i+1)
		}
	}
	sep := ": "
	if lines[0] == "" || lines[0][0] == ' ' || lines[0][0] == '\t' {
		sep = ":" // the value brings its own leading whitespace or folds at once
	}
	return []byte(h.Name + sep + strings.Join(lines, "\r\n") + "\r\n"), nil
}

// checkFieldName accepts an RFC 5322 §3.6.8 field-name: printable ASCII
// except the colon.
func checkFieldName(name string) error {
	if name == "" {
		return invalid("empty field name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e || c == ':' {
			return invalid("field name %q has a character RFC 5322 §3.6.8 forbids at %d", name, i)
		}
	}
	return nil
}
