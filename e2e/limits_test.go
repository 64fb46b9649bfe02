package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/mtatest"
)

// TestPostfixHeaderLimitRejects: a message with more header fields than
// [limits] max_headers is refused through a real Postfix with 552 5.3.4,
// and the next message passes. (Postfix's own header_size_limit bounds
// one header at 100 KB, so the count is the limit a test can reach through
// it.)
func TestPostfixHeaderLimitRejects(t *testing.T) {
	f := startFilter(t, "[limits]\nmax_headers = 20\n")
	pf, sink := postfixWith(t, f)
	var extra []string
	for i := 0; i < 30; i++ {
		extra = append(extra, fmt.Sprintf("X-Filler-%02d: field %d", i, i))
	}
	res := mtatest.Send(t, pf.SMTPAddr, mail(t, extra...))
	if res.Code != 552 || res.Enhanced != "5.3.4" || res.Text != "Message header too large" {
		t.Fatalf("SMTP reply %d %q %q, want 552 5.3.4 Message header too large\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if res := mtatest.Send(t, pf.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("a message within the limit: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if got := sink.Wait(t, 1, 30*time.Second); len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
}
