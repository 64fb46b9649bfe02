package dsn_test

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/dsn"
)

// FuzzCompose feeds arbitrary text into every free-form input. Compose must
// never panic, must refuse with ErrInvalid or produce a notice go-message
// parses, and no input may add a field to the notice's header, a group to
// its delivery status or a field to the quoted original header.
//
//	go test ./dsn -run '^$' -fuzz FuzzCompose -fuzztime 30s
func FuzzCompose(f *testing.F) {
	f.Add("Your message is delayed.", "", "Subject", "hello", "alice@example.com", "smtp; 451 4.7.1 Greylisted")
	f.Add("Grüße\r\nline two\rthree\n", "Verzögert", "Received", "from a\n\tby b", "a@b.example", "")
	f.Add("", "x\r\nBcc: eve@example.org", "X-A", "v\nBcc: eve@example.org", "alice@example.com\r\nBcc: e@x", "smtp; 451\r\nx")
	f.Add("caf\xe9", "\x00", "Na:me", "\r\r\n\n", "<>", "x400; whatever")
	f.Add(strings.Repeat("long ", 400), strings.Repeat("s", 300), "DKIM-Signature", strings.Repeat("b=", 600)+"\r\n x", "\"odd user\"@example.com", "smtp;")
	f.Fuzz(func(t *testing.T, text, subject, name, value, to, diagnostic string) {
		n := delayNotice()
		n.HumanText, n.Subject, n.To = text, subject, to
		n.Recipients[0].Diagnostic = diagnostic
		n.OriginalHeader = []dsn.Header{{Name: name, Value: value}}

		msg, err := dsn.Compose(n)
		if err != nil {
			if !errors.Is(err, dsn.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		p, err := readNotice(msg)
		if err != nil {
			t.Fatalf("Compose produced a notice that does not parse: %v\n%q", err, msg)
		}
		checkNoticeFieldsOnce(t, p)
		if len(p.parts) != 3 {
			t.Fatalf("%d parts, want 3", len(p.parts))
		}
		if groups := statusGroups(t, p.parts[1].body); len(groups) != 1+len(n.Recipients) {
			t.Fatalf("%d delivery-status groups, want %d", len(groups), 1+len(n.Recipients))
		}
		checkOneQuotedField(t, p.parts[2].body, name)
		if text != "" {
			want := strings.TrimRight(strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(text), "\r\n")
			if got := strings.TrimRight(string(p.parts[0].body), "\r\n"); got != want {
				t.Fatalf("human text read back %q, want %q", got, want)
			}
		}
	})
}

// checkNoticeFieldsOnce requires the notice's header to be exactly its own
// fields, each once: nothing injected.
func checkNoticeFieldsOnce(t *testing.T, p parsed) {
	t.Helper()
	want := map[string]bool{"from": true, "to": true, "subject": true, "date": true, "message-id": true,
		"auto-submitted": true, "mime-version": true, "content-type": true}
	seen := map[string]bool{}
	for fs := p.header.Fields(); fs.Next(); {
		k := strings.ToLower(fs.Key())
		if !want[k] || seen[k] {
			t.Fatalf("notice header has an unexpected or repeated field %q\n%q", fs.Key(), p.raw)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("notice header has %d of its %d fields", len(seen), len(want))
	}
}

// checkOneQuotedField requires the quoted original header to hold exactly
// the one field given, under its name.
func checkOneQuotedField(t *testing.T, body []byte, name string) {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(body, "\r\n"...))))
	if err != nil {
		t.Fatalf("quoted header does not parse: %v\n%q", err, body)
	}
	fs := h.Fields()
	if h.Len() != 1 || !fs.Next() || !strings.EqualFold(fs.Key(), name) {
		t.Fatalf("quoted header has %d fields, want exactly %q\n%q", h.Len(), name, body)
	}
}
