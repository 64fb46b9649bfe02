package e2e

import (
	"path/filepath"
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

// TestSendmailUnixSocket: Sendmail reaches wasmilter over a unix socket,
// where wasmilter negotiates no reply at connect, HELO, MAIL and RCPT, no
// DATA and no end of header: the plain message is stamped once, and a
// plugin's tempfail decided on the header reaches the SMTP client from end
// of message.
func TestSendmailUnixSocket(t *testing.T) {
	mtatest.Require(t, "sendmail", "swaks")
	tempfail := pluginFile(t, "./testdata/plugins/tempfail")
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	f := startFilter(t, "[milter]\nlisten = \"unix:"+sock+"\"\nsocket_mode = \"0666\"\n"+`
[[plugins]]
name = "stamp"
path = "builtin:stamp"

[[plugins]]
name = "grey"
path = "`+tempfail+`"

[plugins.config]
code = 451
enhanced = "4.7.1"
text = "Try again later"
`)
	sink := mtatest.StartSink(t)
	sm := mtatest.StartSendmail(t, mtatest.SendmailConfig{Milter: f.sendmailSpec(), RelayTo: sink.Addr})
	if res := mtatest.Send(t, sm.SMTPAddr, mail(t, "X-Test-Tempfail: yes")); res.Code != 451 || res.Enhanced != "4.7.1" {
		t.Fatalf("SMTP reply %d %s %s, want the plugin's 451 4.7.1\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if res := mtatest.Send(t, sm.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("SMTP reply %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 1, 60*time.Second)
	if n := len(headerOf(t, got[0].Data).Values(stamp.DefaultHeader)); n != 1 {
		t.Fatalf("%d stamp headers through Sendmail over a unix socket, want 1:\n%s", n, got[0].Data)
	}
}
