package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
)

// mxSetup says where one MX's wasmilter listens and keeps its ledger.
type mxSetup struct {
	sock       string // the milter socket Postfix connects to
	noticeAddr string // the Postfix listener without milters that takes notices
	store      string // [retry] store; "" is a bbolt file in the filter's directory
	node       string // [notify] node; "" is the host name
}

// mxConfig is the greylist example and the stamp behind a Postfix, with
// the default delay policy on short steps and notices submitted to the
// Postfix's listener that runs no milters.
func mxConfig(t *testing.T, mx mxSetup) string {
	greylist := pluginFile(t, "./examples/greylist")
	if mx.store == "" {
		mx.store = "bolt:ledger.db"
	}
	node := ""
	if mx.node != "" {
		node = "node = \"" + mx.node + "\"\n"
	}
	return `
[milter]
listen = "unix:` + mx.sock + `"
socket_mode = "0666"
[admin]
listen = ""
[retry]
store = "` + mx.store + `"
max_age = "1h"
[notify]
sweep_interval = "100ms"
smtp = "` + mx.noticeAddr + `"
hostname = "mx.wasmilter.test"
` + node + `timeout = "20s"
lease = "40s"
retry_after = "1s"
[notify.policy.config]
notify_after = ["2s"]
max_age = "1h"
local_domains = ["example.org"]
[[plugins]]
name = "greylist"
path = "` + greylist + `"
[plugins.config]
min_delay = "5m"
[[plugins]]
name = "stamp"
path = "builtin:stamp"
`
}

// notices are the delivery status notifications the sink received for rcpt.
func notices(sink *mtatest.Sink, rcpt string) []mtatest.Received {
	var out []mtatest.Received
	for _, m := range sink.Messages() {
		if m.From == "" && len(m.To) == 1 && m.To[0] == rcpt {
			out = append(out, m)
		}
	}
	return out
}

// waitNotices waits until rcpt has n notices, and fails on more.
func waitNotices(t *testing.T, sink *mtatest.Sink, rcpt string, n int, timeout time.Duration) []mtatest.Received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := notices(sink, rcpt)
		if len(got) > n {
			t.Fatalf("%d notices to %s, want %d", len(got), rcpt, n)
		}
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notices to %s after %s, want %d; the sink has %d messages", len(got), rcpt, timeout, n, len(sink.Messages()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parsedNotice is a notice's delivery-status fields for its first
// recipient and its quoted original header.
type parsedNotice struct {
	header   gomessage.Header
	status   textproto.Header
	original textproto.Header
}

func parseNotice(t *testing.T, data []byte) parsedNotice {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("notice does not parse: %v\n%s", err, data)
	}
	if mt, params, _ := e.Header.ContentType(); mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("notice is %s %v, want multipart/report; report-type=delivery-status", mt, params)
	}
	var pn parsedNotice
	pn.header = e.Header
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(p.Body)
		switch mt, _, _ := p.Header.ContentType(); mt {
		case "message/delivery-status":
			groups := bytes.SplitN(body, []byte("\r\n\r\n"), 2)
			if len(groups) < 2 {
				t.Fatalf("delivery-status without a recipient group:\n%s", body)
			}
			pn.status = readHeader(t, groups[1])
		case "text/rfc822-headers":
			pn.original = readHeader(t, body)
		}
	}
	return pn
}

func readHeader(t *testing.T, b []byte) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufioReader(append(bytes.TrimRight(b, "\r\n"), "\r\n\r\n"...)))
	if err != nil {
		t.Fatalf("header block does not parse: %v\n%s", err, b)
	}
	return h
}

// TestPostfixDelayNotices: a real Postfix filters through wasmilter and
// takes its notices. A local sender's greylisted message gets one
// "delayed" notice with the original Subject; a message from <> gets none;
// the policy gives the message up after max_age with a "failed" notice,
// and its next attempt is refused with 550 5.4.7.
func TestPostfixDelayNotices(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	sink := mtatest.StartSink(t)
	pf := mtatest.StartPostfix(t, mtatest.PostfixConfig{Milter: "unix:" + sock, RelayTo: sink.Addr, NoticeListener: true})
	clock := manualclock.New(time.Now().Truncate(time.Second))
	startFilterIn(t, mxConfig(t, mxSetup{sock: sock, noticeAddr: pf.NoticeAddr}), t.TempDir(), server.Options{Clock: clock.Now})

	m := mail(t)
	if res := mtatest.Send(t, pf.SMTPAddr, m); res.Code != 451 || res.Enhanced != "4.7.1" {
		t.Fatalf("first attempt: %d %s %s, want 451 4.7.1\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	bounce := mail(t)
	bounce.From = ""
	if res := mtatest.Send(t, pf.SMTPAddr, bounce); res.Code != 451 {
		t.Fatalf("a message from <>: %d %s, want 451\n%s", res.Code, res.Text, res.Transcript)
	}

	clock.Advance(3 * time.Second) // past notify_after's first step
	got := waitNotices(t, sink, m.From, 1, 30*time.Second)
	n := parseNotice(t, got[0].Data)
	if a := n.status.Get("Action"); a != "delayed" {
		t.Errorf("Action %q, want delayed", a)
	}
	if s := n.status.Get("Status"); s != "4.7.1" {
		t.Errorf("Status %q, want the greylisting's 4.7.1", s)
	}
	if fr := n.status.Get("Final-Recipient"); fr != "rfc822; bob@example.net" {
		t.Errorf("Final-Recipient %q", fr)
	}
	if subj := n.original.Get("Subject"); subj != t.Name() {
		t.Errorf("original Subject %q in the headers part, want %q", subj, t.Name())
	}
	if ac := n.header.Get("Auto-Submitted"); ac != "auto-replied" {
		t.Errorf("Auto-Submitted %q", ac)
	}

	// More sweeps: still one notice to the sender, none about <>.
	time.Sleep(time.Second)
	waitNotices(t, sink, m.From, 1, 0)
	if all := len(sink.Messages()); all != 1 {
		t.Fatalf("the sink has %d messages, want only the one notice", all)
	}

	clock.Advance(time.Hour) // past max_age
	got = waitNotices(t, sink, m.From, 2, 30*time.Second)
	final := parseNotice(t, got[1].Data)
	if a, s := final.status.Get("Action"), final.status.Get("Status"); a != "failed" || s != "5.4.7" {
		t.Errorf("final notice: Action %q Status %q, want failed 5.4.7", a, s)
	}
	if res := mtatest.Send(t, pf.SMTPAddr, m); res.Code != 550 || res.Enhanced != "5.4.7" {
		t.Fatalf("attempt past max_age: %d %s %s, want 550 5.4.7\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	if all := len(sink.Messages()); all != 2 {
		t.Errorf("the sink has %d messages, want the two notices", all)
	}
}

// TestPostfixNoticeSurvivesRestart: wasmilter is stopped while it is in the
// middle of submitting a notice (the relay stalls at RCPT), once gracefully
// and once cut off, and started again on the same ledger: each time the
// sender gets the notice exactly once.
func TestPostfixNoticeSurvivesRestart(t *testing.T) {
	for _, graceful := range []bool{true, false} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			mtatest.Require(t, "postfix", "swaks")
			sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
			sink := mtatest.StartSink(t)
			pf := mtatest.StartPostfix(t, mtatest.PostfixConfig{Milter: "unix:" + sock, RelayTo: sink.Addr,
				NoticeListener: true, NoticeListenerOptions: map[string]string{"smtpd_client_restrictions": "sleep,3,permit"}})
			dir := t.TempDir()
			toml := mxConfig(t, mxSetup{sock: sock, noticeAddr: pf.NoticeAddr})
			clock := manualclock.New(time.Now().Truncate(time.Second))
			first := startFilterIn(t, toml, dir, server.Options{Clock: clock.Now})

			m := mail(t)
			if res := mtatest.Send(t, pf.SMTPAddr, m); res.Code != 451 {
				t.Fatalf("first attempt: %d %s\n%s", res.Code, res.Text, res.Transcript)
			}
			clock.Advance(3 * time.Second)
			waitForLog(t, pf, "connect from ", 2, 10*time.Second) // swaks, then the notifier
			time.Sleep(500 * time.Millisecond)                    // inside the relay's 3 s sleep
			if graceful {
				first.stop(t) // waits for the send in flight
			} else {
				first.srv.Close() // cuts it off
				<-first.done
				first.stopped = true
			}
			second := startFilterIn(t, toml, dir, server.Options{Clock: clock.Now})
			clock.Advance(2 * time.Second) // past retry_after, for the send that was cut off
			waitNotices(t, sink, m.From, 1, 30*time.Second)
			time.Sleep(2 * time.Second) // more sweeps, retries due
			waitNotices(t, sink, m.From, 1, 0)

			// The ledger tells the two apart: the graceful stop let the
			// first send finish and recorded it; the cut-off send was
			// released and sent again after the restart.
			second.stop(t)
			wantClaims := map[bool]int{true: 1, false: 2}[graceful]
			l, err := retry.OpenBolt(filepath.Join(dir, "ledger.db"), retry.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			recs, err := l.List(context.Background(), retry.Filter{State: retry.Deferred})
			if err != nil || len(recs) != 1 {
				t.Fatalf("deferred records: %d, %v", len(recs), err)
			}
			if e, _ := recs[0].OutboxEntry(1); e.Status != retry.NoticeSent || e.Claims != wantClaims {
				t.Errorf("outbox step 1: %+v, want sent after %d claim(s)", e, wantClaims)
			}
		})
	}
}

// waitForLog waits until Postfix's log has n lines containing s.
func waitForLog(t *testing.T, pf *mtatest.Postfix, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(pf.Log(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("postfix did not log %q %d times within %s:\n%s", s, n, timeout, pf.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
