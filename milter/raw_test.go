package milter

import (
	"net"
	"strings"
	"sync"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// TestVersion2MTA: an old MTA offering version 2 and no protocol bits gets
// version 2, a reply to every event (also those the session does not need,
// answered without calling it), and a continue per header.
func TestVersion2MTA(t *testing.T) {
	b := newTestBackend(Needs{Headers: true, Actions: gomilter.OptAddHeader | gomilter.OptChangeFrom})
	b.onEOM = func(*testSession) (Reply, []Modification) {
		return Reply{}, []Modification{
			{Kind: AddHeader, Name: "X-Old", Value: "mta"},
			{Kind: ChangeFrom, Value: "not-allowed@example.org"}, // not offered: dropped
		}
	}
	ts := startServer(t, b)
	m := dialRaw(t, ts)
	got := m.negotiate(2, gomilter.OptAddHeader|gomilter.OptChangeHeader, 0)
	if got != (optneg{version: 2, actions: gomilter.OptAddHeader}) {
		t.Fatalf("negotiated %+v", got)
	}
	m.send('C', connectPayload("old.example", '4', 25, "192.0.2.1"))
	m.expect('c', "")
	m.send('H', cstr("old.example"))
	m.expect('c', "")
	m.send('M', cstr("<a@example.net>"))
	m.expect('c', "")
	m.send('R', cstr("<b@example.net>"))
	m.expect('c', "")
	for _, h := range []string{"From", "To", "Subject"} {
		m.send('L', cstr(h, "v"))
		m.expect('c', "")
	}
	m.send('N')
	m.expect('c', "")
	m.send('B', "body\r\n")
	m.expect('c', "")
	m.send('E')
	m.expect('h', cstr("X-Old", "mta"))
	m.expect('c', "")
	m.send('Q')
	m.expectClosed()
	b.log.waitClosed(t, 1)
	wantEvents(t, b.log.snapshot(),
		"new session 1 version=2",
		"header From: v", "header To: v", "header Subject: v",
		"eoh headers=3",
		"eom headers=3 body=0 macros=[]",
		"close 1",
	)
	ts.logs.waitFor(t, "dropping modification the MTA did not allow")
}

// TestReplyCodePayload checks the exact SMFIR_REPLYCODE bytes, and that an
// unsafe custom reply falls back to the plain verdict.
func TestReplyCodePayload(t *testing.T) {
	replies := map[string]Reply{
		"a": {Action: Reject, Code: 550, Enhanced: "5.7.1", Text: "50% off %s"},
		"b": {Action: TempFail},
		"c": {Action: TempFail, Code: 421, Text: "shutting down"},
		"d": {Action: Reject, Text: "bad\r\nX-Injected: yes"},
		"e": {Action: Reject, Code: 451, Text: "class mismatch"},
		"f": {Action: TempFail, Enhanced: "5.1.1", Text: "enhanced mismatch"},
		"g": {Action: Reject, Code: 553},
		"h": {Action: Discard},
		"i": {Action: Accept, Text: "ignored for accept"},
	}
	b := newTestBackend(allNeeds())
	b.onRcpt = func(_ *testSession, to string) Reply { return replies[to] }
	ts := startServer(t, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<>"))
	m.expect('c', "")
	for _, tc := range []struct{ rcpt, code, payload string }{
		{"a", "y", "550 5.7.1 50%% off %%s\x00"},
		{"b", "t", ""},
		{"c", "y", "421 4.7.1 shutting down\x00"},
		{"d", "r", ""},
		{"e", "r", ""},
		{"f", "t", ""},
		{"g", "y", "553 5.7.1\x00"},
		{"h", "d", ""},
	} {
		m.send('R', cstr("<"+tc.rcpt+">"))
		m.expect(tc.code[0], tc.payload)
	}
	// Accept at RCPT ends the message: the session sees Abort.
	m.send('R', cstr("<i>"))
	m.expect('a', "")
	m.send('Q')
	m.expectClosed()
	b.log.waitClosed(t, 1)
	events := b.log.snapshot()
	if events[len(events)-2] != "abort" {
		t.Errorf("Accept at RCPT did not end the message: %q", events)
	}
	for _, want := range []string{"reply text contains CR, LF or NUL", "reply code 451 does not fit a reject reply", "5.1.1\\\" is not 4.x.y"} {
		ts.logs.waitFor(t, want)
	}
}

// TestDataAndQuitNewConnection: DATA is always answered; QUIT_NC closes
// the session, clears all macros, and CONNECT starts a fresh session on
// the same connection.
func TestDataAndQuitNewConnection(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.macrosAtEOM = []string{"j", "{client_addr}", "i"}
	ts := startServer(t, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)

	m.send('D', "C"+cstr("j", "mx", "{client_addr}", "192.0.2.1"))
	m.send('C', connectPayload("one", '4', 1000, "192.0.2.1"))
	m.expect('c', "")
	m.send('D', "M"+cstr("i", "ONE"))
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.send('R', cstr("<b@x>"))
	m.expect('c', "")
	m.send('D', "T"+cstr("{data}", "1"))
	m.send('T')
	m.expect('c', "")
	m.send('K') // mid-message: the message is aborted, the session closed
	b.log.waitClosed(t, 1)

	m.send('D', "C"+cstr("j", "mx2"))
	m.send('C', connectPayload("two", 'L', 0, "/run/client.sock"))
	m.expect('c', "")
	m.send('M', cstr("<c@x>"))
	m.expect('c', "")
	m.send('T')
	m.expect('c', "")
	m.send('E')
	m.expect('c', "")
	m.send('Q')
	m.expectClosed()
	b.log.waitClosed(t, 1)
	wantEvents(t, b.log.snapshot(),
		"new session 1 version=6",
		"connect host=one family=inet port=1000 addr=192.0.2.1",
		"mail <a@x> []",
		"rcpt <b@x> []",
		"abort",
		"close 1",
		"new session 2 version=6",
		"connect host=two family=unix port=0 addr=/run/client.sock",
		"mail <c@x> []",
		"eom headers=0 body=0 macros=[j=mx2/true {client_addr}=/false i=/false]",
		"close 2",
	)
}

// TestMacrosForNextMailSurviveImplicitAbort: Postfix sends the MAIL macros
// before MAIL; when that MAIL implicitly aborts an open message, the new
// message must keep them.
func TestMacrosForNextMailSurviveImplicitAbort(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.macrosAtEOM = []string{"i", "{rcpt_addr}"}
	ts := startServer(t, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('D', "M"+cstr("i", "OLD"))
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.send('D', "R"+cstr("{rcpt_addr}", "old@x"))
	m.send('R', cstr("<old@x>"))
	m.expect('c', "")
	m.send('D', "M"+cstr("i", "NEW"))
	m.send('M', cstr("<b@x>"))
	m.expect('c', "")
	m.send('E')
	m.expect('c', "")
	m.send('Q')
	b.log.waitClosed(t, 1)
	events := strings.Join(b.log.snapshot(), "\n")
	if !strings.Contains(events, "abort\nmail <b@x> []\neom headers=0 body=0 macros=[i=NEW/true {rcpt_addr}=/false]") {
		t.Errorf("events:\n%s", events)
	}
}

// countingListener wraps accepted connections to count Write calls.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*countingConn
}

type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: nc}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

// TestEndOfMessageIsOneWrite proves a batch of modifications and the final
// reply leave in a single write, even when larger than any buffer.
func TestEndOfMessageIsOneWrite(t *testing.T) {
	b := newTestBackend(allNeeds())
	big := strings.Repeat("v", 20000)
	b.onEOM = func(*testSession) (Reply, []Modification) {
		return Reply{Action: Accept}, []Modification{
			{Kind: AddHeader, Name: "X-A", Value: "1"},
			{Kind: AddHeader, Name: "X-Big", Value: big},
			{Kind: ChangeHeader, Index: 1, Name: "Subject", Value: "s"},
			{Kind: AddRcpt, Value: "p@x", Args: []string{"NOTIFY=NEVER", "ORCPT=rfc822;p@x"}},
			{Kind: Quarantine, Value: "q"},
		}
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	ts := serveOn(t, ln, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.send('L', cstr("Subject", "s")) // no reply: NR_HDR
	m.send('N')
	m.expect('c', "")

	ln.mu.Lock()
	cc := ln.conns[0]
	ln.mu.Unlock()
	before := cc.count()
	m.send('E')
	m.expect('h', cstr("X-A", "1"))
	m.expect('h', cstr("X-Big", big))
	m.expect('m', "\x00\x00\x00\x01"+cstr("Subject", "s"))
	m.expect('2', cstr("<p@x>", "NOTIFY=NEVER ORCPT=rfc822;p@x"))
	m.expect('q', cstr("q"))
	m.expect('a', "")
	if n := cc.count() - before; n != 1 {
		t.Errorf("end of message took %d writes, want 1", n)
	}
}
