package loadgen

import (
	"strings"
	"testing"
)

func TestParseMessageKeepsFoldingAndSpaces(t *testing.T) {
	raw := "Subject: hello\nX-Folded: one\n\ttwo\n  three\nX-Tab:\tvalue\nX-Empty:\n\nline 1\nline 2"
	m, err := ParseMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Header{{"Subject", " hello"}, {"X-Folded", " one\n\ttwo\n  three"}, {"X-Tab", "\tvalue"}, {"X-Empty", ""}}
	if len(m.Headers) != len(want) {
		t.Fatalf("headers %q, want %q", m.Headers, want)
	}
	for i := range want {
		if m.Headers[i] != want[i] {
			t.Errorf("header %d = %q, want %q", i, m.Headers[i], want[i])
		}
	}
	if got := string(m.Body); got != "line 1\r\nline 2\r\n" {
		t.Errorf("body %q, want CRLF lines with the last one ended", got)
	}
	if m.Size != len(strings.ReplaceAll(raw, "\n", "\r\n")) {
		t.Errorf("size %d", m.Size)
	}
}

// What a milter gets for a header: Sendmail and Postfix eat one space
// after the colon unless SMFIP_HDR_LEADSPC was negotiated.
func TestHeaderPayloadLeadingSpace(t *testing.T) {
	for _, tt := range []struct {
		value string
		lead  bool
		want  string
	}{
		{" a b", false, "N\x00a b\x00"},
		{" a b", true, "N\x00 a b\x00"},
		{"  a", false, "N\x00 a\x00"},
		{"\ta", false, "N\x00\ta\x00"},
	} {
		if got := string(headerPayload("N", tt.value, tt.lead)); got != tt.want {
			t.Errorf("headerPayload(%q, %v) = %q, want %q", tt.value, tt.lead, got, tt.want)
		}
	}
}

func TestParseMessageRefusesNonsense(t *testing.T) {
	for _, raw := range []string{"", "\n\nbody only", " starts with a space: x\n\nb", "no colon here\n\nb"} {
		if _, err := ParseMessage(strings.NewReader(raw)); err == nil {
			t.Errorf("ParseMessage(%q) accepted it", raw)
		}
	}
}

func TestDefaultMessageIsARealisticNewsletter(t *testing.T) {
	m := DefaultMessage()
	if len(m.Headers) != 20 || m.Size < 3500 || m.Size > 4500 || m.messageIDIndex() < 0 {
		t.Fatalf("built-in message: %d headers, %d bytes, Message-ID at %d", len(m.Headers), m.Size, m.messageIDIndex())
	}
	if len(m.bodyChunks()) != 1 {
		t.Errorf("a 4 KB body is one chunk, got %d", len(m.bodyChunks()))
	}
}

func TestBodyChunksAtPostfixSize(t *testing.T) {
	m := &Message{Body: make([]byte, 2*maxBodyChunk+10)}
	chunks := m.bodyChunks()
	if len(chunks) != 3 || len(chunks[0]) != maxBodyChunk || len(chunks[2]) != 10 {
		t.Fatalf("chunk sizes %d", len(chunks))
	}
}

func TestPostfixOffer(t *testing.T) {
	o, err := PostfixOffer(6)
	if err != nil || o.Version != 6 || o.Actions != 0x1ff || o.Protocol != 0x1fffff {
		t.Fatalf("v6 offer %+v, %v", o, err)
	}
	if _, err := PostfixOffer(5); err == nil {
		t.Error("version 5 accepted; Postfix has none")
	}
}
