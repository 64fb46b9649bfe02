package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/stamp"
)

// TestPostfixStampsOnce: the default configuration (the builtin stamp
// policy) behind a real Postfix delivers the message with exactly one stamp,
// whose id is the message's identity.
func TestPostfixStampsOnce(t *testing.T) {
	f := startFilter(t, "")
	pf, sink := postfixWith(t, f)
	m := mail(t)
	res := mtatest.Send(t, pf.SMTPAddr, m)
	if res.Code != 250 {
		t.Fatalf("SMTP reply %d %s %s, want 250\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 1, 30*time.Second)
	h := headerOf(t, got[0].Data)
	stamps := h.Values(stamp.DefaultHeader)
	if len(stamps) != 1 {
		t.Fatalf("%d stamp headers, want 1:\n%s", len(stamps), got[0].Data)
	}
	codec, _ := stamp.NewCodec("", nil)
	st, err := codec.Parse(stamps[0])
	if err != nil {
		t.Fatalf("delivered stamp %q does not parse: %v", stamps[0], err)
	}
	want := stamp.Derive(stamp.Facts{Sender: m.From, Recipients: m.To,
		Headers: []stamp.Field{{Name: "Message-ID", Value: h.Get("Message-Id")}}})
	if st.ID != want {
		t.Errorf("stamp id %s, want the message identity %s", st.ID, want)
	}
	if age := time.Since(st.FirstSeen); age < -time.Minute || age > 5*time.Minute {
		t.Errorf("stamp first-seen time %s is not now", st.FirstSeen)
	}
}

// TestPostfixKeepsCarriedStamp: a message that arrives with a valid stamp of
// ours is not stamped again, and one with a forged stamp loses it and gets ours.
func TestPostfixKeepsCarriedStamp(t *testing.T) {
	key := "0123456789abcdef0123456789abcdef"
	f := startFilter(t, "[stamp]\nkeys = [\""+key+"\"]\n")
	pf, sink := postfixWith(t, f)
	codec, _ := stamp.NewCodec("", [][]byte{[]byte(key)})
	carried := codec.Format(stamp.Stamp{ID: stamp.Derive(stamp.Facts{Sender: "earlier@example.org"}),
		FirstSeen: time.Now().Add(-time.Hour).Truncate(time.Second).UTC()})

	if res := mtatest.Send(t, pf.SMTPAddr, mail(t, stamp.DefaultHeader+": "+carried)); res.Code != 250 {
		t.Fatalf("carried: %d %s\n%s", res.Code, res.Text, res.Transcript)
	}
	forged := "v=1; id=" + strings.Repeat("a", 26) + "; t=2020-01-01T00:00:00Z; mac=AAAAAAAAAAAAAAAAAAAAAA"
	if res := mtatest.Send(t, pf.SMTPAddr, mail(t, stamp.DefaultHeader+": "+forged)); res.Code != 250 {
		t.Fatalf("forged: %d %s\n%s", res.Code, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 2, 30*time.Second)
	var sawCarried, sawReplaced bool
	for _, r := range got {
		values := headerOf(t, r.Data).Values(stamp.DefaultHeader)
		if len(values) != 1 {
			t.Fatalf("%d stamp headers, want 1:\n%s", len(values), r.Data)
		}
		switch {
		case values[0] == carried:
			sawCarried = true
		case values[0] != forged:
			if _, err := codec.Parse(values[0]); err != nil {
				t.Fatalf("replacement stamp does not verify: %v", err)
			}
			sawReplaced = true
		}
	}
	if !sawCarried || !sawReplaced {
		t.Fatalf("carried kept: %v, forged replaced: %v", sawCarried, sawReplaced)
	}
}

// TestPostfixRunawayPluginGetsOnErrorInTime: a plugin that loops forever
// costs its message the plugin's on_error outcome within the deadline plus a
// small slack, and the next message is served normally.
func TestPostfixRunawayPluginGetsOnErrorInTime(t *testing.T) {
	loop := pluginFile(t, "./testdata/plugins/loop")
	f := startFilter(t, `
[[plugins]]
name = "loop"
path = "`+loop+`"
timeout = "300ms"
on_error = "tempfail"

[[plugins]]
name = "stamp"
path = "builtin:stamp"
`)
	pf, sink := postfixWith(t, f)
	start := time.Now()
	res := mtatest.Send(t, pf.SMTPAddr, mail(t, "X-Test-Loop: yes"))
	elapsed := time.Since(start)
	if res.Code != 451 || res.Enhanced != "4.3.0" {
		t.Fatalf("runaway plugin: SMTP reply %d %s %s, want 451 4.3.0\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	// The bound is the deadline plus slack for Postfix, swaks and a loaded CI machine:
	// without a deadline the message would wait for milter_command_timeout (30s).
	if elapsed > 300*time.Millisecond+5*time.Second {
		t.Errorf("the deferral took %s; the plugin deadline is 300ms", elapsed)
	}
	if res := mtatest.Send(t, pf.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("next message after the runaway: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if got := sink.Wait(t, 1, 30*time.Second); len(headerOf(t, got[0].Data).Values(stamp.DefaultHeader)) != 1 {
		t.Fatalf("next message not stamped:\n%s", got[0].Data)
	}
}

// TestPostfixCustomTempfailReply: the exact code, enhanced code and text a
// plugin answers at its headers hook reach the SMTP client, over TCP and
// over a unix socket. Both paths give the header's decision at end of
// message (end of header is negotiated away without a body plugin); over
// the unix socket Postfix does not even wait for wasmilter at connect,
// HELO, MAIL, RCPT or DATA.
func TestPostfixCustomTempfailReply(t *testing.T) {
	for _, transport := range []string{"tcp", "unix"} {
		t.Run(transport, func(t *testing.T) { testPostfixCustomTempfailReply(t, transport) })
	}
}

func testPostfixCustomTempfailReply(t *testing.T, transport string) {
	tempfail := pluginFile(t, "./testdata/plugins/tempfail")
	listen := ""
	if transport == "unix" {
		sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
		listen = "[milter]\nlisten = \"unix:" + sock + "\"\nsocket_mode = \"0666\"\n"
	}
	f := startFilter(t, listen+`
[[plugins]]
name = "grey"
path = "`+tempfail+`"

[plugins.config]
code = 452
enhanced = "4.7.1"
text = "Greylisted by wasmilter, please retry in 5 minutes"
`)
	pf, sink := postfixWith(t, f)
	res := mtatest.Send(t, pf.SMTPAddr, mail(t, "X-Test-Tempfail: yes"))
	if res.Code != 452 || res.Enhanced != "4.7.1" || res.Text != "Greylisted by wasmilter, please retry in 5 minutes" {
		t.Fatalf("SMTP reply %d %q %q, want 452 4.7.1 and the plugin's text\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if res := mtatest.Send(t, pf.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("untriggered message: %d %s\n%s", res.Code, res.Text, res.Transcript)
	}
	if got := sink.Wait(t, 1, 30*time.Second); len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
}

// TestPostfixUnixSocket: Postfix reaches wasmilter over a unix socket.
func TestPostfixUnixSocket(t *testing.T) {
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	f := startFilter(t, "[milter]\nlisten = \"unix:"+sock+"\"\nsocket_mode = \"0666\"\n")
	pf, sink := postfixWith(t, f)
	if res := mtatest.Send(t, pf.SMTPAddr, mail(t)); res.Code != 250 {
		t.Fatalf("SMTP reply %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if got := sink.Wait(t, 1, 30*time.Second); len(headerOf(t, got[0].Data).Values(stamp.DefaultHeader)) != 1 {
		t.Fatalf("not stamped over the unix socket:\n%s", got[0].Data)
	}
}
