package dsn_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/dsn"
)

var (
	now      = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	arrival  = now.Add(-3 * time.Hour)
	retryEnd = now.Add(5 * 24 * time.Hour)
)

// delayNotice is a typical notice: one greylisted recipient still being
// retried, one given up on, the original header with folded fields.
func delayNotice() dsn.Notice {
	return dsn.Notice{
		ReportingMTA: "dns; mx.example.org",
		From:         "Mail Delivery System <MAILER-DAEMON@mx.example.org>",
		To:           "alice@example.com",
		ArrivalDate:  arrival,
		Recipients: []dsn.Recipient{
			{
				Address:        "bob@example.net",
				Action:         dsn.Delayed,
				Status:         "4.7.1",
				Diagnostic:     "smtp; 451 4.7.1 Greylisted",
				WillRetryUntil: retryEnd,
				LastAttempt:    now.Add(-time.Minute),
			},
			{Address: "carol@example.net", Action: dsn.Failed, Status: "5.1.1"},
		},
		OriginalHeader: []dsn.Header{
			{Name: "Received", Value: "from client.example.com (client.example.com [192.0.2.1])\n\tby mx.example.org (Postfix) with ESMTP id 4Vx"},
			{Name: "Message-ID", Value: "<orig-1@example.com>"},
			{Name: "Subject", Value: "Quarterly figures"},
			{Name: "DKIM-Signature", Value: "v=1; a=rsa-sha256; d=example.com;\r\n s=sel; b=abc"},
		},
		OriginalEnvelopeID: "QQ314159",
		Date:               now,
	}
}

// parsed is a notice read back with go-message.
type parsed struct {
	raw    []byte
	header mail.Header
	params map[string]string
	parts  []parsedPart
}

type parsedPart struct {
	header      message.Header
	contentType string
	params      map[string]string
	body        []byte // decoded
	rawTransfer string // Content-Transfer-Encoding as written
}

func mustCompose(t *testing.T, n dsn.Notice) []byte {
	t.Helper()
	b, err := dsn.Compose(n)
	if err != nil {
		t.Fatalf("Compose: %v", err)
	}
	return b
}

// parseNotice reads a composed notice back with go-message, checking on the
// way that it is a multipart/report and uses CRLF line ends throughout.
func parseNotice(t testing.TB, raw []byte) parsed {
	t.Helper()
	p, err := readNotice(raw)
	if err != nil {
		t.Fatalf("reading the notice back: %v\n%s", err, raw)
	}
	return p
}

func readNotice(raw []byte) (parsed, error) {
	if i := bytes.IndexByte(bytes.ReplaceAll(raw, []byte("\r\n"), nil), '\n'); i >= 0 {
		return parsed{}, fmt.Errorf("bare LF in the message")
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		return parsed{}, err
	}
	p := parsed{raw: raw, header: mail.Header{Header: e.Header}}
	var ct string
	if ct, p.params, err = e.Header.ContentType(); err != nil {
		return p, err
	}
	if ct != "multipart/report" {
		return p, fmt.Errorf("Content-Type %q, want multipart/report", ct)
	}
	mr := e.MultipartReader()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, err
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			return p, fmt.Errorf("part %d: %w", len(p.parts)+1, err)
		}
		pp := parsedPart{header: part.Header, body: body, rawTransfer: part.Header.Get("Content-Transfer-Encoding")}
		if pp.contentType, pp.params, err = part.Header.ContentType(); err != nil {
			return p, err
		}
		p.parts = append(p.parts, pp)
	}
	return p, nil
}

// statusGroups splits a message/delivery-status body into its field groups
// with go-message's header reader, as a DSN reader would.
func statusGroups(t testing.TB, body []byte) []textproto.Header {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	var groups []textproto.Header
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return groups
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("delivery-status group %d: %v\n%s", len(groups)+1, err, body)
		}
		if h.Len() == 0 {
			continue // the empty line after the last group
		}
		groups = append(groups, h)
	}
}

func TestComposeIsMultipartReportOfThreeParts(t *testing.T) {
	p := parseNotice(t, mustCompose(t, delayNotice()))

	if got := p.params["report-type"]; got != "delivery-status" {
		t.Errorf("report-type = %q, want delivery-status", got)
	}
	want := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	if len(p.parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(p.parts), len(want))
	}
	for i, ct := range want {
		if p.parts[i].contentType != ct {
			t.Errorf("part %d is %s, want %s", i+1, p.parts[i].contentType, ct)
		}
	}
	if got := p.parts[0].params["charset"]; got != "utf-8" {
		t.Errorf("text part charset = %q, want utf-8", got)
	}
	if got := p.parts[1].rawTransfer; got != "7bit" {
		t.Errorf("delivery-status Content-Transfer-Encoding = %q, want 7bit (RFC 3464 §2.1)", got)
	}
}

func TestComposeNoticeHeader(t *testing.T) {
	p := parseNotice(t, mustCompose(t, delayNotice()))
	h := p.header

	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "MAILER-DAEMON@mx.example.org" || from[0].Name != "Mail Delivery System" {
		t.Errorf("From = %v (%v)", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	// One recipient failed: a failure outweighs a delay.
	if s, err := h.Subject(); err != nil || s != dsn.SubjectFailed {
		t.Errorf("Subject = %q (%v), want %q", s, err, dsn.SubjectFailed)
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date = %v (%v), want %v", d, err, now)
	}
	id, err := h.MessageID()
	if err != nil || !strings.HasSuffix(id, "@mx.example.org") || len(id) < len("x@mx.example.org")+10 {
		t.Errorf("Message-ID = %q (%v), want a random id at the reporting host", id, err)
	}
	for name, want := range map[string]string{"MIME-Version": "1.0", "Auto-Submitted": "auto-replied"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, line := range []string{"MIME-Version: 1.0\r\n", "Auto-Submitted: auto-replied\r\n", "Message-ID: <" + id + ">\r\n"} {
		if !bytes.Contains(p.raw, []byte(line)) {
			t.Errorf("the notice lacks the line %q", line)
		}
	}
}

func TestComposeDefaultSubjectFollowsTheWorstAction(t *testing.T) {
	for _, tc := range []struct {
		actions []dsn.Action
		want    string
	}{
		{[]dsn.Action{dsn.Delayed}, dsn.SubjectDelayed},
		{[]dsn.Action{dsn.Delayed, dsn.Failed}, dsn.SubjectFailed},
		{[]dsn.Action{dsn.Relayed, dsn.Delayed}, dsn.SubjectDelayed},
		{[]dsn.Action{dsn.Relayed}, dsn.SubjectCleared},
		{[]dsn.Action{dsn.Delivered}, dsn.SubjectCleared},
	} {
		n := delayNotice()
		n.Recipients = nil
		for i, a := range tc.actions {
			n.Recipients = append(n.Recipients, dsn.Recipient{Address: fmt.Sprintf("r%d@example.net", i), Action: a, Status: statusFor(a)})
		}
		h := parseNotice(t, mustCompose(t, n)).header
		if got, _ := h.Subject(); got != tc.want {
			t.Errorf("actions %v: Subject %q, want %q", tc.actions, got, tc.want)
		}
	}
}

func statusFor(a dsn.Action) string {
	switch a {
	case dsn.Delayed:
		return "4.7.1"
	case dsn.Failed:
		return "5.7.1"
	}
	return "2.0.0"
}

func TestComposeDeliveryStatusFields(t *testing.T) {
	p := parseNotice(t, mustCompose(t, delayNotice()))
	groups := statusGroups(t, p.parts[1].body)
	if len(groups) != 3 {
		t.Fatalf("%d field groups, want per-message + 2 recipients", len(groups))
	}
	checkFields(t, "per-message", groups[0], map[string]string{
		"Reporting-MTA":        "dns; mx.example.org",
		"Original-Envelope-Id": "QQ314159",
		"Arrival-Date":         "Wed, 01 May 2024 09:00:00 +0000",
	})
	checkFields(t, "bob", groups[1], map[string]string{
		"Final-Recipient":   "rfc822; bob@example.net",
		"Action":            "delayed",
		"Status":            "4.7.1",
		"Diagnostic-Code":   "smtp; 451 4.7.1 Greylisted",
		"Last-Attempt-Date": "Wed, 01 May 2024 11:59:00 +0000",
		"Will-Retry-Until":  "Mon, 06 May 2024 12:00:00 +0000",
	})
	// Optional fields without a value are left out, not written empty.
	checkFields(t, "carol", groups[2], map[string]string{
		"Final-Recipient": "rfc822; carol@example.net",
		"Action":          "failed",
		"Status":          "5.1.1",
	})
}

// checkFields requires h to hold exactly want, each field once.
func checkFields(t *testing.T, group string, h textproto.Header, want map[string]string) {
	t.Helper()
	got := map[string]int{}
	for fs := h.Fields(); fs.Next(); {
		got[strings.ToLower(fs.Key())]++
	}
	for name, value := range want {
		if v := h.Get(name); v != value {
			t.Errorf("%s: %s = %q, want %q", group, name, v, value)
		}
		if got[strings.ToLower(name)] != 1 {
			t.Errorf("%s: %s appears %d times, want once", group, name, got[strings.ToLower(name)])
		}
		delete(got, strings.ToLower(name))
	}
	for name := range got {
		t.Errorf("%s: unexpected field %s", group, name)
	}
}

func TestComposeExactFieldSyntax(t *testing.T) {
	n := delayNotice()
	n.Recipients = n.Recipients[:1]
	status := string(parseNotice(t, mustCompose(t, n)).parts[1].body)
	want := "Reporting-MTA: dns; mx.example.org\r\n" +
		"Original-Envelope-Id: QQ314159\r\n" +
		"Arrival-Date: Wed, 01 May 2024 09:00:00 +0000\r\n" +
		"\r\n" +
		"Final-Recipient: rfc822; bob@example.net\r\n" +
		"Action: delayed\r\n" +
		"Status: 4.7.1\r\n" +
		"Diagnostic-Code: smtp; 451 4.7.1 Greylisted\r\n" +
		"Last-Attempt-Date: Wed, 01 May 2024 11:59:00 +0000\r\n" +
		"Will-Retry-Until: Mon, 06 May 2024 12:00:00 +0000\r\n"
	if strings.TrimRight(status, "\r\n") != strings.TrimRight(want, "\r\n") {
		t.Errorf("delivery-status body:\n%q\nwant\n%q", status, want)
	}
}

func TestComposeQuotesTheOriginalHeaderExactly(t *testing.T) {
	n := delayNotice()
	n.OriginalHeader = append(n.OriginalHeader, dsn.Header{Name: "Subject", Value: "Grüße aus Köln"})
	p := parseNotice(t, mustCompose(t, n))
	part := p.parts[2]

	want := "Received: from client.example.com (client.example.com [192.0.2.1])\r\n" +
		"\tby mx.example.org (Postfix) with ESMTP id 4Vx\r\n" +
		"Message-ID: <orig-1@example.com>\r\n" +
		"Subject: Quarterly figures\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.com;\r\n s=sel; b=abc\r\n" +
		"Subject: Grüße aus Köln\r\n"
	if got := string(part.body); strings.TrimRight(got, "\r\n") != strings.TrimRight(want, "\r\n") {
		t.Errorf("text/rfc822-headers:\n%q\nwant\n%q", got, want)
	}
	if part.rawTransfer != "quoted-printable" {
		t.Errorf("8-bit header quoted as %q, want quoted-printable (keeps the notice 7-bit)", part.rawTransfer)
	}

	// A reader of the part sees the fields in order, folding kept.
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(part.body)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for fs := h.Fields(); fs.Next(); {
		names = append(names, fs.Key())
	}
	if got := strings.Join(names, ","); got != "Received,Message-Id,Subject,Dkim-Signature,Subject" {
		t.Errorf("fields read back: %s", got)
	}
	if raw, _ := h.Raw("Dkim-Signature"); string(raw) != "DKIM-Signature: v=1; a=rsa-sha256; d=example.com;\r\n s=sel; b=abc\r\n" {
		t.Errorf("DKIM-Signature raw %q: folding not kept", raw)
	}
}

func TestComposeBoundsTheOriginalHeaderToWholeFields(t *testing.T) {
	n := delayNotice()
	n.OriginalHeader = nil
	const fieldLen = 1000 // "X-Fill-NN: " + value + CRLF
	for i := range 40 {
		name := fmt.Sprintf("X-Fill-%02d", i)
		n.OriginalHeader = append(n.OriginalHeader, dsn.Header{Name: name, Value: strings.Repeat("v", fieldLen-len(name)-4)})
	}
	body := parseNotice(t, mustCompose(t, n)).parts[2].body
	if len(body) > dsn.MaxOriginalHeaderBytes+2 {
		t.Errorf("quoted header is %d bytes, bound %d", len(body), dsn.MaxOriginalHeaderBytes)
	}
	kept := dsn.MaxOriginalHeaderBytes / fieldLen
	for i := range 40 {
		has := bytes.Contains(body, fmt.Appendf(nil, "X-Fill-%02d: ", i))
		if has != (i < kept) {
			t.Errorf("field %d present = %v; want the first %d fields, whole", i, has, kept)
		}
	}
}

func TestComposeWithoutOriginalHeaderHasTwoParts(t *testing.T) {
	n := delayNotice()
	n.OriginalHeader = nil
	p := parseNotice(t, mustCompose(t, n))
	if len(p.parts) != 2 || p.parts[1].contentType != "message/delivery-status" {
		t.Errorf("parts %d; want text/plain and message/delivery-status only", len(p.parts))
	}
}

func TestComposeHumanTextRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name, text, encoding string
	}{
		{"ascii", "Your message to bob is delayed.\nWe keep trying.", "7bit"},
		{"non-ascii", "Ihre Nachricht an Jörg wird verzögert.\nÇa arrive — 稍后重试.", "quoted-printable"},
		{"long line", strings.Repeat("word ", 250), "quoted-printable"},
		{"crlf and cr", "one\r\ntwo\rthree", "7bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := delayNotice()
			n.HumanText = tc.text
			part := parseNotice(t, mustCompose(t, n)).parts[0]
			want := strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(tc.text)
			if got := strings.TrimRight(string(part.body), "\r\n"); got != strings.TrimRight(want, "\r\n") {
				t.Errorf("text read back:\n%q\nwant\n%q", got, want)
			}
			if part.rawTransfer != tc.encoding {
				t.Errorf("Content-Transfer-Encoding %q, want %q", part.rawTransfer, tc.encoding)
			}
		})
	}
}

func TestComposeDefaultsWithMinimalInput(t *testing.T) {
	n := dsn.Notice{
		ReportingMTA: "mx.example.org.",
		To:           "alice@example.com",
		Recipients:   []dsn.Recipient{{Address: "bob@example.net", Action: dsn.Delayed, Status: "4.7.1", Diagnostic: "smtp; 451 4.7.1 Greylisted"}},
		Date:         now,
	}
	p := parseNotice(t, mustCompose(t, n))
	if from, _ := p.header.AddressList("From"); len(from) != 1 || from[0].Address != "MAILER-DAEMON@mx.example.org" {
		t.Errorf("default From = %v", from)
	}
	if s, _ := p.header.Subject(); s != dsn.SubjectDelayed {
		t.Errorf("default Subject = %q", s)
	}
	text := string(p.parts[0].body)
	for _, want := range []string{"mx.example.org", "<bob@example.net>: delayed", "smtp; 451 4.7.1 Greylisted", "WARNING ONLY"} {
		if !strings.Contains(text, want) {
			t.Errorf("default text lacks %q:\n%s", want, text)
		}
	}
	groups := statusGroups(t, p.parts[1].body)
	checkFields(t, "per-message", groups[0], map[string]string{"Reporting-MTA": "dns; mx.example.org"})
}

func TestComposeKeepsAGivenMessageIDAndSubject(t *testing.T) {
	n := delayNotice()
	n.MessageID = "<notice-7@mx.example.org>"
	n.Subject = "Verzögerte Zustellung"
	p := parseNotice(t, mustCompose(t, n))
	if id, _ := p.header.MessageID(); id != "notice-7@mx.example.org" {
		t.Errorf("Message-ID = %q", id)
	}
	if s, err := p.header.Subject(); err != nil || s != n.Subject {
		t.Errorf("Subject = %q (%v), want %q", s, err, n.Subject)
	}
	if bytes.Contains(p.raw, []byte("ö")) {
		t.Error("the notice carries raw 8-bit bytes; want it all 7-bit")
	}
}

func TestComposeRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*dsn.Notice)
		want   string // in the error
	}{
		{"To with CRLF", func(n *dsn.Notice) { n.To = "alice@example.com\r\nBcc: eve@example.org" }, "line break"},
		{"To null sender", func(n *dsn.Notice) { n.To = "" }, "null address"},
		{"To <>", func(n *dsn.Notice) { n.To = "<>" }, "null address"},
		{"To bracketed", func(n *dsn.Notice) { n.To = "<alice@example.com>" }, "angle brackets"},
		{"To non-ASCII", func(n *dsn.Notice) { n.To = "jörg@example.com" }, "RFC 6533"},
		{"To not an address", func(n *dsn.Notice) { n.To = "alice" }, "RFC 5322 address"},
		{"Subject injection", func(n *dsn.Notice) { n.Subject = "hi\r\nBcc: eve@example.org" }, "control character"},
		{"Subject bare LF", func(n *dsn.Notice) { n.Subject = "hi\nthere" }, "control character"},
		{"From injection", func(n *dsn.Notice) { n.From = "a@b.example\nBcc: eve@example.org" }, "line break"},
		{"recipient with LF", func(n *dsn.Notice) { n.Recipients[0].Address = "bob@example.net\nAction: delivered" }, "recipient 1"},
		{"diagnostic with CRLF", func(n *dsn.Notice) { n.Recipients[0].Diagnostic = "smtp; 451\r\nAction: delivered" }, "line break"},
		{"diagnostic without type", func(n *dsn.Notice) { n.Recipients[0].Diagnostic = "451 4.7.1 Greylisted" }, "type; text"},
		{"status malformed", func(n *dsn.Notice) { n.Recipients[0].Status = "4.7" }, "RFC 3463"},
		{"status contradicts delayed", func(n *dsn.Notice) { n.Recipients[0].Status = "5.7.1" }, "contradicts"},
		{"status contradicts relayed", func(n *dsn.Notice) {
			n.Recipients[0] = dsn.Recipient{Address: "b@example.net", Action: dsn.Relayed, Status: "4.0.0"}
		}, "contradicts"},
		{"unknown action", func(n *dsn.Notice) { n.Recipients[0].Action = "cleared" }, "not one of"},
		{"retry-until on failed", func(n *dsn.Notice) { n.Recipients[1].WillRetryUntil = retryEnd }, "only meaningful"},
		{"no recipients", func(n *dsn.Notice) { n.Recipients = nil }, "at least one recipient"},
		{"no date", func(n *dsn.Notice) { n.Date = time.Time{} }, "Date is required"},
		{"no reporting MTA", func(n *dsn.Notice) { n.ReportingMTA = "" }, "ReportingMTA is required"},
		{"non-dns MTA type", func(n *dsn.Notice) { n.ReportingMTA = "x400; c=us" }, "dns"},
		{"bad host", func(n *dsn.Notice) { n.ReportingMTA = "mx example.org" }, "not a DNS host name"},
		{"header name with colon", func(n *dsn.Notice) { n.OriginalHeader[0].Name = "Sub:ject" }, "field name"},
		{"header value injects a field", func(n *dsn.Notice) { n.OriginalHeader[0].Value = "x\nBcc: eve@example.org" }, "new field"},
		{"header value ends the header", func(n *dsn.Notice) { n.OriginalHeader[0].Value = "x\n\nbody" }, "new field"},
		{"human text not UTF-8", func(n *dsn.Notice) { n.HumanText = "caf\xe9" }, "UTF-8"},
		{"message id with space", func(n *dsn.Notice) { n.MessageID = "a b@example.org" }, "MessageID"},
		{"envelope id with space", func(n *dsn.Notice) { n.OriginalEnvelopeID = "a b" }, "OriginalEnvelopeID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := delayNotice()
			tc.change(&n)
			msg, err := dsn.Compose(n)
			if err == nil {
				t.Fatalf("Compose accepted it:\n%s", msg)
			}
			if !errors.Is(err, dsn.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestComposeQuotesABareCRAsASpace(t *testing.T) {
	n := delayNotice()
	n.OriginalHeader = []dsn.Header{{Name: "Subject", Value: "a\rBcc: eve@example.org"}}
	body := parseNotice(t, mustCompose(t, n)).parts[2].body
	if got := strings.TrimRight(string(body), "\r\n"); got != "Subject: a Bcc: eve@example.org" {
		t.Errorf("quoted %q", got)
	}
}

func TestComposeFailedMayCarryTheLastTransientStatus(t *testing.T) {
	// An expired record ends "failed" with the 4.x.x it kept getting, as
	// Postfix reports mail that outlived its queue lifetime.
	n := delayNotice()
	n.Recipients = []dsn.Recipient{{Address: "bob@example.net", Action: dsn.Failed, Status: "4.7.1", Diagnostic: "smtp; 451 4.7.1 Greylisted"}}
	groups := statusGroups(t, parseNotice(t, mustCompose(t, n)).parts[1].body)
	if got := groups[1].Get("Status"); got != "4.7.1" {
		t.Errorf("Status %q", got)
	}
}

func TestComposeMintsADistinctMessageIDEachTime(t *testing.T) {
	first, second := parseNotice(t, mustCompose(t, delayNotice())), parseNotice(t, mustCompose(t, delayNotice()))
	a, _ := first.header.MessageID()
	b, _ := second.header.MessageID()
	if a == b {
		t.Errorf("two notices share Message-ID %q", a)
	}
}

func TestSMTPDiagnostic(t *testing.T) {
	for _, tc := range []struct {
		code           int
		enhanced, text string
		want           string
	}{
		{451, "4.7.1", "Greylisted", "smtp; 451 4.7.1 Greylisted"},
		{550, "", "No such user", "smtp; 550 No such user"},
		{451, "4.7.1", "Try again\r\nlater, please", "smtp; 451 4.7.1 Try again later, please"},
		{554, "5.7.1", "Grüße", "smtp; 554 5.7.1 Gr??e"},
	} {
		got := dsn.SMTPDiagnostic(tc.code, tc.enhanced, tc.text)
		if got != tc.want {
			t.Errorf("SMTPDiagnostic(%d, %q, %q) = %q, want %q", tc.code, tc.enhanced, tc.text, got, tc.want)
		}
		n := delayNotice()
		n.Recipients[0].Diagnostic = got
		if _, err := dsn.Compose(n); err != nil {
			t.Errorf("Compose refuses SMTPDiagnostic's %q: %v", got, err)
		}
	}
	long := dsn.SMTPDiagnostic(451, "4.7.1", strings.Repeat("x", 2000))
	n := delayNotice()
	n.Recipients[0].Diagnostic = long
	if _, err := dsn.Compose(n); err != nil {
		t.Errorf("Compose refuses a cut diagnostic: %v", err)
	}
}
