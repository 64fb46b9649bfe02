package mtatest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/internal/modroot"
)

// Transcripts below are shaped exactly like swaks 20201014 prints them.

const acceptedTranscript = `=== Trying 127.0.0.1:2525...
=== Connected to 127.0.0.1.
<-  220 mta.wasmilter.test ESMTP Postfix
 -> EHLO client.wasmilter.test
<-  250-mta.wasmilter.test
<-  250-PIPELINING
<-  250 8BITMIME
 -> MAIL FROM:<a@client.wasmilter.test>
<-  250 2.1.0 Ok
 -> RCPT TO:<b@remote.wasmilter.test>
<-  250 2.1.5 Ok
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Subject: 550 5.7.1 not a reply
 -> 
 -> <-  250 looks like a reply but is data
 -> .
<-  250 2.0.0 Ok: queued as 4Xyz
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with remote host.
`

func TestParseTranscriptEndOfData(t *testing.T) {
	res, err := parseTranscript(acceptedTranscript)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 250 || res.Enhanced != "2.0.0" || res.Text != "Ok: queued as 4Xyz" {
		t.Errorf("got %d %q %q", res.Code, res.Enhanced, res.Text)
	}
	if res.Transcript != acceptedTranscript {
		t.Error("transcript not kept")
	}
}

func TestParseTranscriptMultiLineEndOfDataReject(t *testing.T) {
	tr := strings.Replace(acceptedTranscript, "<-  250 2.0.0 Ok: queued as 4Xyz\n",
		"<** 550-5.7.1 first line\n<** 550 5.7.1 second line\n", 1)
	res, err := parseTranscript(tr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 550 || res.Enhanced != "5.7.1" || res.Text != "first line\nsecond line" {
		t.Errorf("got %d %q %q", res.Code, res.Enhanced, res.Text)
	}
}

func TestParseTranscriptRcptRejectWithoutData(t *testing.T) {
	tr := `=== Connected to 127.0.0.1.
<-  220 mta ESMTP
 -> EHLO c
<-  250 mta
 -> MAIL FROM:<a@c>
<-  250 2.1.0 Ok
 -> RCPT TO:<b@r>
<** 454 4.7.1 <b@r>: Relay access denied
 -> QUIT
<-  221 2.0.0 Bye
`
	res, err := parseTranscript(tr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 454 || res.Enhanced != "4.7.1" || res.Text != "<b@r>: Relay access denied" {
		t.Errorf("got %d %q %q", res.Code, res.Enhanced, res.Text)
	}
}

func TestParseTranscriptReplyWithoutEnhancedCode(t *testing.T) {
	tr := "<** 554 go away\n"
	res, err := parseTranscript(tr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != 554 || res.Enhanced != "" || res.Text != "go away" {
		t.Errorf("got %d %q %q", res.Code, res.Enhanced, res.Text)
	}
}

func TestParseTranscriptNoServer(t *testing.T) {
	tr := "=== Trying 127.0.0.1:9...\n*** Error connecting to 127.0.0.1:9:\n***\tIO::Socket::INET6: connect: Connection refused\n"
	if _, err := parseTranscript(tr); err == nil {
		t.Error("a transcript without any reply parsed without error")
	}
}

func TestSwaksArgs(t *testing.T) {
	args, err := swaksArgs("127.0.0.1:2525", Mail{To: []string{"a@x", "b@y"}, Source: "127.0.0.2"}, "/f")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(args, " ")
	for _, want := range []string{"--server 127.0.0.1 --port 2525", "--from <>", "--to a@x,b@y",
		"--helo client.wasmilter.test", "--data @/f", "--local-interface 127.0.0.2"} {
		if !strings.Contains(joined, want) {
			t.Errorf("args %q lack %q", joined, want)
		}
	}
	if _, err := swaksArgs("127.0.0.1:2525", Mail{}, "/f"); err == nil {
		t.Error("no recipients accepted")
	}
	if _, err := swaksArgs("no-port", Mail{To: []string{"a@x"}}, "/f"); err == nil {
		t.Error("address without port accepted")
	}
}

func TestRenderSettingsRejectsLineBreaks(t *testing.T) {
	if _, err := renderSettings(map[string]string{"smtpd_milters": "inet:x\nrelayhost = evil"}); err == nil {
		t.Error("a value with a line break was rendered")
	}
	out, err := renderSettings(map[string]string{"b": "2", "a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, "a = 1\nb = 2\n") {
		t.Errorf("settings not rendered sorted:\n%s", out)
	}
}

func TestCheckNamesWhatIsMissing(t *testing.T) {
	if p := check("sh"); p != "" {
		t.Errorf("sh reported missing: %s", p)
	}
	if p := check("no-such-command-mtatest"); !strings.Contains(p, "no-such-command-mtatest") {
		t.Errorf("missing command reported as %q", p)
	}
	t.Setenv(EnvSendmailRoot, t.TempDir())
	if p := check(NeedSendmail); !strings.Contains(p, "lacks") || !strings.Contains(p, EnvSendmailRoot) {
		t.Errorf("empty sendmail tree reported as %q", p)
	}
}

func TestListeningSeesALoopbackListener(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if !listening(port) {
		t.Errorf("port %d listens but listening says no", port)
	}
	ln.Close()
	if listening(port) {
		t.Errorf("port %d closed but listening says yes", port)
	}
}

func TestSinkKeepsMessagesInOrder(t *testing.T) {
	s := &Sink{arrived: make(chan struct{})}
	s.store(Received{From: "a"})
	s.store(Received{From: "b"})
	got := s.Wait(t, 2, 0)
	if len(got) != 2 || got[0].From != "a" || got[1].From != "b" {
		t.Errorf("got %+v", got)
	}
	got[0].From = "changed"
	if s.Messages()[0].From != "a" {
		t.Error("Messages shares its slice with callers")
	}
}

func TestSinkStopsWhenClosedAtOnce(t *testing.T) {
	// A test that skips right after StartSink closes the sink before its
	// Serve goroutine may have run; the cleanup must not hang on that.
	for i := 0; i < 20; i++ {
		t.Run(fmt.Sprint("sink", i), func(t *testing.T) { StartSink(t) })
	}
}

// TestNoticeListenerExampleIsTheTestedLine: the master.cf line admins copy
// from examples/postfix is the one the end-to-end tests run.
func TestNoticeListenerExampleIsTheTestedLine(t *testing.T) {
	root, err := modroot.Find()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "postfix", "master.cf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := NoticeListenerLine("127.0.0.1:10026"); !strings.Contains(string(b), want+"\n") {
		t.Errorf("examples/postfix/master.cf lacks the tested line:\n%s", want)
	}
}
