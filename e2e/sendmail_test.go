package e2e

import (
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/stamp"
)

// TestSendmailStampsOnce: the default configuration behind a real Sendmail
// 8.17 delivers the message with exactly one stamp.
func TestSendmailStampsOnce(t *testing.T) {
	mtatest.Require(t, "sendmail", "swaks")
	f := startFilter(t, "")
	sink := mtatest.StartSink(t)
	sm := mtatest.StartSendmail(t, mtatest.SendmailConfig{Milter: f.sendmailSpec(), RelayTo: sink.Addr})
	if res := mtatest.Send(t, sm.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("SMTP reply %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 1, 60*time.Second)
	if n := len(headerOf(t, got[0].Data).Values(stamp.DefaultHeader)); n != 1 {
		t.Fatalf("%d stamp headers through Sendmail, want 1:\n%s", n, got[0].Data)
	}
}
