package milter

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// startUnixServer serves backend on a unix socket, where the server may
// use the no-reply stages.
func startUnixServer(t testing.TB, backend Backend) *testServer {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "milter.sock"))
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, backend)
}

// TestQuietStagesOverUnixSocket: with Postfix's offer on a unix socket, a
// Session that always continues before end of header is told every event
// but answers none of them; the first bytes the MTA reads after
// negotiation are end of message's. A stray reply at any earlier stage
// would come first and fail the test.
func TestQuietStagesOverUnixSocket(t *testing.T) {
	b := newTestBackend(quiet)
	b.needs.Actions = gomilter.OptAddHeader
	b.onEOM = func(*testSession) (Reply, []Modification) {
		return Reply{}, []Modification{{Kind: AddHeader, Name: "X-Quiet", Value: "yes"}}
	}
	ts := startUnixServer(t, b)
	m := dialRaw(t, ts)
	got := m.negotiate(6, fullActions, fullProtocol)
	wantNR := gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply | gomilter.OptNoData
	if got.protocol&wantNR != wantNR {
		t.Fatalf("protocol %#x lacks the no-reply bits %#x", uint32(got.protocol), uint32(wantNR))
	}
	m.send('C', connectPayload("client.example", '4', 2525, "192.0.2.7"))
	m.send('H', cstr("client.example"))
	for i := 0; i < 2; i++ { // two messages: nothing answered before each end of message
		m.send('M', cstr("<a@example.net>"))
		m.send('R', cstr("<b@example.net>"))
		m.send('L', cstr("Subject", "quiet"))
		m.send('E')
		m.expect('h', cstr("X-Quiet", "yes"))
		m.expect('c', "")
	}
	m.send('Q')
	m.expectClosed()
	b.log.waitClosed(t, 1)
	msg := []string{"mail <a@example.net> []", "rcpt <b@example.net> []", "header Subject: quiet",
		"eoh headers=1", "eom headers=1 body=0 macros=[]"}
	want := append([]string{"new session 1 version=6", "connect host=client.example family=inet port=2525 addr=192.0.2.7", "helo client.example"}, msg...)
	want = append(append(want, msg...), "close 1")
	wantEvents(t, b.log.snapshot(), want...)
}

// TestQuietStageAnsweredClosesTheConnection: a Session that decides at a
// stage it declared quiet cannot be heard (the MTA reads no reply there).
// Rather than let the message pass as if it had continued, the connection
// is closed, so the MTA applies its default action.
func TestQuietStageAnsweredClosesTheConnection(t *testing.T) {
	b := newTestBackend(quiet)
	b.onMail = func(*testSession, string) Reply { return Reply{Action: Reject} }
	ts := startUnixServer(t, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@example.net>"))
	m.expectClosed()
	ts.logs.waitFor(t, "where the MTA was told to expect no reply")
	b.log.waitClosed(t, 1)
}

// TestSkippedEndOfHeaders: with headers wanted and no body, end of header
// is negotiated away and the Session's EndOfHeaders runs when end of
// message arrives. Its continue leads to EndOfMessage; its tempfail is the
// final reply, and the message is aborted, not ended.
func TestSkippedEndOfHeaders(t *testing.T) {
	b := newTestBackend(Needs{Mail: true, Headers: true})
	b.onEOH = func(s *testSession) Reply {
		if s.headers > 1 {
			return Reply{Action: TempFail, Code: 451, Enhanced: "4.7.1", Text: "later"}
		}
		return Reply{}
	}
	ts := startServer(t, b) // TCP: EOH is skipped there too
	m := dialRaw(t, ts)
	if got := m.negotiate(6, fullActions, fullProtocol); got.protocol&gomilter.OptNoEOH == 0 {
		t.Fatalf("protocol %#x: end of header not negotiated away", uint32(got.protocol))
	}
	m.send('M', cstr("<a@example.net>"))
	m.expect('c', "")
	m.send('L', cstr("Subject", "one"))
	m.send('E')
	m.expect('c', "")
	m.send('M', cstr("<a@example.net>"))
	m.expect('c', "")
	m.send('L', cstr("Subject", "one"))
	m.send('L', cstr("To", "two"))
	m.send('E')
	m.expect('y', "451 4.7.1 later\x00")
	m.send('Q')
	m.expectClosed()
	b.log.waitClosed(t, 1)
	wantEvents(t, b.log.snapshot(),
		"new session 1 version=6",
		"mail <a@example.net> []", "header Subject: one", "eoh headers=1", "eom headers=1 body=0 macros=[]",
		"mail <a@example.net> []", "header Subject: one", "header To: two", "eoh headers=2", "abort",
		"close 1")
}

// TestDeadlineIsMovedOnlyAfterAnEighth: the first call sets a deadline; a
// call within timeout/8 leaves it; a later one moves it to timeout from
// then, so the limit enforced stays within [7/8, 1] of timeout.
func TestDeadlineIsMovedOnlyAfterAnEighth(t *testing.T) {
	var got []time.Time
	set := func(d time.Time) error { got = append(got, d); return nil }
	var setAt time.Time
	const timeout = 80 * time.Millisecond
	if err := deadline(set, &setAt, timeout); err != nil || len(got) != 1 {
		t.Fatalf("first call: %d deadlines set, err %v", len(got), err)
	}
	deadline(set, &setAt, timeout)
	if len(got) != 1 {
		t.Fatalf("a call right after moved the deadline again")
	}
	time.Sleep(timeout/8 + 5*time.Millisecond)
	deadline(set, &setAt, timeout)
	if len(got) != 2 || !got[1].After(got[0]) {
		t.Fatalf("a call after timeout/8 did not move the deadline: %v", got)
	}
	if left := time.Until(got[1]); left < timeout*7/8 || left > timeout {
		t.Fatalf("deadline %v from now, want within [%v, %v]", left, timeout*7/8, timeout)
	}
}

// TestConnectionGoroutinesAreReused: connections one after another are
// served by one goroutine, which waits for the next in between (keeping
// the stack a plugin call grew); Close ends the waiting ones.
func TestConnectionGoroutinesAreReused(t *testing.T) {
	b := newTestBackend(Needs{Mail: true})
	ts := startServer(t, b)
	for i := 1; i <= 3; i++ {
		s := ts.client(t, fullActions, fullProtocol)
		if act, err := s.Mail("a@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
			t.Fatalf("connection %d: %+v %v", i, act, err)
		}
		s.Close()
		b.log.waitClosed(t, 1)
		waitCond(t, "a goroutine waiting for the next connection", func() bool { return ts.srv.idle.Load() >= 1 })
	}
	// One goroutine served all three; a second may start if a connection
	// arrives while the first is between serving and waiting.
	if n := ts.srv.started.Load(); n >= 3 {
		t.Errorf("%d connection goroutines started for 3 connections one after another", n)
	}
	ts.srv.Close()
	waitCond(t, "no goroutine waiting after Close", func() bool { return ts.srv.idle.Load() == 0 })
}
