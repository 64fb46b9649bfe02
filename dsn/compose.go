package dsn

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Compose renders n as a complete RFC 5322 message with CRLF line endings:
// a multipart/report (RFC 6522) of report-type delivery-status (RFC 3464)
// with the human-readable text, the delivery-status fields and, when n has
// one, the original header. It does no I/O. Input that is malformed or
// would inject a header field gives an error wrapping ErrInvalid.
func Compose(n Notice) ([]byte, error) {
	r, err := n.check()
	if err != nil {
		return nil, fmt.Errorf("dsn: compose: %w", err)
	}
	msg, err := r.render()
	if err != nil {
		// Validation admits only what go-message can write; reaching this
		// is a bug in this package, reported rather than panicked.
		return nil, fmt.Errorf("dsn: compose: %w", err)
	}
	return msg, nil
}

// render writes the validated report with go-message.
func (r *report) render() ([]byte, error) {
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, r.header())
	if err != nil {
		return nil, err
	}
	if err := writePart(w, textPart("text/plain", "Notification", []byte(r.humanText))); err != nil {
		return nil, fmt.Errorf("human-readable part: %w", err)
	}
	status, err := r.deliveryStatus()
	if err != nil {
		return nil, fmt.Errorf("delivery-status part: %w", err)
	}
	if err := writePart(w, statusPart(status)); err != nil {
		return nil, fmt.Errorf("delivery-status part: %w", err)
	}
	// RFC 6522 makes the third part optional: without an original header
	// there is nothing to quote, and an empty part would only puzzle.
	if len(r.original) > 0 {
		if err := writePart(w, textPart("text/rfc822-headers", "Undelivered Message Headers", r.original)); err != nil {
			return nil, fmt.Errorf("original header part: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// header is the notice's own header. go-message puts every field it sets
// on top of the others, so the fields are set from the bottom up.
func (r *report) header() message.Header {
	var h mail.Header
	// The boundary is chosen here, not by go-message, which would set it
	// by replacing Content-Type and so move that field to the top.
	h.SetContentType("multipart/report", map[string]string{
		"report-type": "delivery-status",
		"boundary":    randomToken(),
	})
	// AddRaw keeps the spelling of RFC 2045 and RFC 5322 (go-message's Set
	// would write "Mime-Version" and "Message-Id"); both values are
	// validated, one line each.
	h.AddRaw([]byte("MIME-Version: 1.0\r\n"))
	// RFC 3834 §5: a notice is an automatic reply; responders and
	// vacation programs must not answer it.
	h.Set("Auto-Submitted", "auto-replied")
	h.AddRaw([]byte("Message-ID: <" + r.messageID + ">\r\n"))
	h.SetDate(r.date)
	h.SetSubject(r.subject)
	h.SetAddressList("To", []*mail.Address{r.to})
	h.SetAddressList("From", []*mail.Address{r.from})
	return h.Header
}

// part is one body part: its MIME header and its decoded content.
type part struct {
	header message.Header
	body   []byte
}

// textPart is a text/* part, quoted-printable when the text needs it.
func textPart(contentType, description string, body []byte) part {
	var h message.Header
	h.Set("Content-Transfer-Encoding", transferEncoding(body))
	h.SetContentType(contentType, charsetParam(body))
	h.Set("Content-Description", description)
	return part{h, body}
}

// charsetParam declares UTF-8 for text that is UTF-8 beyond ASCII. Text
// that is not valid UTF-8 (a legacy 8-bit header) gets no charset rather
// than a false one.
func charsetParam(body []byte) map[string]string {
	for _, c := range body {
		if c >= 0x80 {
			if utf8.Valid(body) {
				return map[string]string{"charset": "utf-8"}
			}
			return map[string]string{}
		}
	}
	return map[string]string{"charset": "utf-8"}
}

// statusPart is the message/delivery-status part; RFC 3464 §2.1 has it
// 7bit, which validation guarantees.
func statusPart(body []byte) part {
	var h message.Header
	h.Set("Content-Transfer-Encoding", "7bit")
	h.SetContentType("message/delivery-status", nil)
	h.Set("Content-Description", "Delivery report")
	return part{h, body}
}

func writePart(w *message.Writer, p part) error {
	pw, err := w.CreatePart(p.header)
	if err != nil {
		return err
	}
	if _, err := pw.Write(p.body); err != nil {
		return err
	}
	return pw.Close()
}

// field is one delivery-status field.
type field struct{ name, value string }

// deliveryStatus renders RFC 3464 §2.1's delivery-status content: the
// per-message fields, then one group of per-recipient fields for each
// recipient, each group ended by an empty line.
func (r *report) deliveryStatus() ([]byte, error) {
	var b bytes.Buffer
	if err := textproto.WriteHeader(&b, rawHeader(r.perMessageFields())); err != nil {
		return nil, err
	}
	for _, rc := range r.recipients {
		if err := textproto.WriteHeader(&b, rawHeader(perRecipientFields(rc))); err != nil {
			return nil, fmt.Errorf("recipient %s: %w", rc.Address, err)
		}
	}
	return b.Bytes(), nil
}

// perMessageFields are RFC 3464 §2.2's fields, in its order.
func (r *report) perMessageFields() []field {
	fs := []field{{"Reporting-MTA", "dns; " + r.host}}
	if r.envelopeID != "" {
		fs = append(fs, field{"Original-Envelope-Id", r.envelopeID})
	}
	if !r.arrival.IsZero() {
		fs = append(fs, field{"Arrival-Date", formatDate(r.arrival)})
	}
	return fs
}

// perRecipientFields are RFC 3464 §2.3's fields, in its order.
func perRecipientFields(rc Recipient) []field {
	fs := []field{
		{"Final-Recipient", "rfc822; " + rc.Address},
		{"Action", string(rc.Action)},
		{"Status", rc.Status},
	}
	if rc.Diagnostic != "" {
		fs = append(fs, field{"Diagnostic-Code", rc.Diagnostic})
	}
	if !rc.LastAttempt.IsZero() {
		fs = append(fs, field{"Last-Attempt-Date", formatDate(rc.LastAttempt)})
	}
	if !rc.WillRetryUntil.IsZero() {
		fs = append(fs, field{"Will-Retry-Until", formatDate(rc.WillRetryUntil)})
	}
	return fs
}

// rawHeader turns validated fields (one line each) into a go-message header.
// AddRaw keeps RFC 3464's spelling ("Reporting-MTA", not the canonical
// "Reporting-Mta"); each field goes on top, so they are added bottom-up.
func rawHeader(fs []field) textproto.Header {
	var h textproto.Header
	for i := len(fs) - 1; i >= 0; i-- {
		h.AddRaw([]byte(fs[i].name + ": " + fs[i].value + "\r\n"))
	}
	return h
}
