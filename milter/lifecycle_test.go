package milter

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// TestMalformedInput: each broken stream closes its connection with a
// warning naming the problem, the session (if any) is closed, and the
// server keeps serving.
func TestMalformedInput(t *testing.T) {
	optneg := string(packet('O', optnegPayload(6, fullActions, fullProtocol)))
	random := make([]byte, 256)
	rand.New(rand.NewSource(1)).Read(random)
	cases := []struct {
		name     string
		input    string
		halfOpen bool // close our write side after the input
		session  bool // a session was created (negotiation succeeded)
		wantLog  string
	}{
		{"huge length", optneg + "\xff\xff\xff\xf0M", false, true, "exceeds limit"},
		{"zero length", optneg + "\x00\x00\x00\x00", false, true, "packet of length 0"},
		{"unknown command", optneg + string(packet('Z', "x")), false, true, "unknown command code 0x5a"},
		{"rcpt before mail", optneg + string(packet('R', cstr("<a@x>"))), false, true, "RCPT before MAIL"},
		{"eom before mail", optneg + string(packet('E')), false, true, "EOM before MAIL"},
		{"header after body", optneg + string(packet('M', cstr("<a@x>"))) + string(packet('B', "x")) + string(packet('L', cstr("A", "b"))), false, true, "HEADER after BODY"},
		{"helo without NUL", optneg + string(packet('H', "name")), false, true, "HELO name is not NUL-terminated"},
		{"connect without port", optneg + string(packet('C', "host\x004")), false, true, "connect packet lacks the port"},
		{"connect bad family", optneg + string(packet('C', "host\x00X")), false, true, "unknown protocol family"},
		{"header without value", optneg + string(packet('M', cstr("<a@x>"))) + string(packet('L', "Subject\x00")), false, true, "header value is not NUL-terminated"},
		{"mail empty", optneg + string(packet('M')), false, true, "MAIL payload is empty"},
		{"second connect", optneg + string(packet('C', connectPayload("h", 'U', 0, ""))) + string(packet('C', connectPayload("h", 'U', 0, ""))), false, true, "CONNECT repeated"},
		{"optneg twice", optneg + optneg, false, true, "OPTNEG repeated"},
		{"optneg too short", string(packet('O', "\x00\x00\x00\x06")), false, false, "option negotiation payload is 4 bytes"},
		{"version 1", string(packet('O', optnegPayload(1, 0, 0))), false, false, "versions 2 to 6 are supported"},
		{"no optneg", string(packet('M', cstr("<a@x>"))), false, false, "first packet is MAIL"},
		{"random bytes", string(random), false, false, "milter protocol error"},
		{"truncated packet", optneg + "\x00\x00\x00\x20Mabc", true, true, "unexpected EOF"},
		{"truncated length", optneg + "\x00\x00", true, true, "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBackend(allNeeds())
			ts := startServer(t, b)
			m := dialRaw(t, ts)
			m.write([]byte(tc.input))
			if tc.halfOpen {
				m.conn.(*net.TCPConn).CloseWrite()
			}
			m.expectClosed()
			ts.logs.waitFor(t, tc.wantLog)
			if tc.session {
				b.log.waitClosed(t, 1)
			}
			if !strings.Contains(ts.logs.String(), "level=WARN") {
				t.Errorf("no warning logged:\n%s", ts.logs.String())
			}
			// The server still serves a well-behaved MTA.
			s := ts.client(t, fullActions, fullProtocol)
			if act, err := s.Mail("ok@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
				t.Fatalf("follow-up session: %+v %v", act, err)
			}
			s.Close()
		})
	}
}

// TestMaxPacketSetting: the limit is configurable.
func TestMaxPacketSetting(t *testing.T) {
	b := newTestBackend(allNeeds())
	ts := startServer(t, b, func(s *Server) { s.MaxPacket = 100 })
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.send('B', strings.Repeat("x", 99)) // exactly 100 bytes with the command
	m.expect('c', "")
	m.send('B', strings.Repeat("x", 100))
	m.expectClosed()
	ts.logs.waitFor(t, "packet length 101 exceeds limit 100")
	b.log.waitClosed(t, 1)
	if events := b.log.snapshot(); events[len(events)-2] != "abort" {
		t.Errorf("open message not aborted: %q", events)
	}
}

// TestSessionPanic: a panic closes only that connection, logged with its
// stack; Abort and Close still run.
func TestSessionPanic(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.onRcpt = func(_ *testSession, to string) Reply {
		if to == "boom@x" {
			panic("plugin exploded")
		}
		return Reply{}
	}
	ts := startServer(t, b)
	calm := ts.client(t, fullActions, fullProtocol)
	defer calm.Close()
	if _, err := calm.Mail("a@x", nil); err != nil {
		t.Fatal(err)
	}

	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.send('R', cstr("<boom@x>"))
	m.expectClosed()
	b.log.waitClosed(t, 1)
	ts.logs.waitFor(t, "milter session panicked")
	ts.logs.waitFor(t, "plugin exploded")
	ts.logs.waitFor(t, "runtime/debug.Stack")

	if act, err := calm.Rcpt("fine@x", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("other connection affected: %+v %v", act, err)
	}
}

// TestReadTimeout: an MTA that goes silent is disconnected.
func TestReadTimeout(t *testing.T) {
	b := newTestBackend(allNeeds())
	ts := startServer(t, b, func(s *Server) { s.ReadTimeout = 50 * time.Millisecond })
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	m.expectClosed()
	b.log.waitClosed(t, 1)
	ts.logs.waitFor(t, "milter connection timed out")
}

// TestShutdownWaitsForSessions: Shutdown returns nil once the MTA ends its
// session, and refuses new connections meanwhile.
func TestShutdownWaitsForSessions(t *testing.T) {
	b := newTestBackend(allNeeds())
	ts := startServer(t, b)
	s := ts.client(t, fullActions, fullProtocol)
	if _, err := s.Mail("a@x", nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(shutdownCtx(t, time.Minute)) }()

	select {
	case err := <-ts.served:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v", err)
		}
		ts.served <- err // for the cleanup check
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
	// The open session keeps working while Shutdown waits.
	if act, err := s.Rcpt("b@x", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("open session broken by Shutdown: %+v %v", act, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	if n := ts.srv.OpenSessions(); n != 1 {
		t.Errorf("OpenSessions = %d, want 1", n)
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the session ended")
	}
	b.log.waitClosed(t, 1)
	if n := ts.srv.OpenSessions(); n != 0 {
		t.Errorf("OpenSessions = %d after Shutdown", n)
	}
	if err := ts.srv.Serve(mustListen(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownForcesCloseOnDeadline: when ctx ends first the connections
// are closed and ctx.Err() returned; the sessions are still closed.
func TestShutdownForcesCloseOnDeadline(t *testing.T) {
	b := newTestBackend(allNeeds())
	ts := startServer(t, b)
	m := dialRaw(t, ts)
	m.negotiate(6, fullActions, fullProtocol)
	m.send('M', cstr("<a@x>"))
	m.expect('c', "")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	m.expectClosed()
	b.log.waitClosed(t, 1)
	if events := b.log.snapshot(); events[len(events)-2] != "abort" {
		t.Errorf("open message not aborted on forced close: %q", events)
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestCloseEndsEverything: Close drops open connections at once and their
// sessions are closed.
func TestCloseEndsEverything(t *testing.T) {
	b := newTestBackend(allNeeds())
	ts := startServer(t, b)
	m1, m2 := dialRaw(t, ts), dialRaw(t, ts)
	m1.negotiate(6, fullActions, fullProtocol)
	m2.negotiate(6, fullActions, fullProtocol)
	if err := ts.srv.Close(); err != nil {
		t.Fatal(err)
	}
	m1.expectClosed()
	m2.expectClosed()
	b.log.waitClosed(t, 2)
}

type nilBackend struct{}

func (nilBackend) NewSession(*Conn) Session { return nil }

func TestBackendErrors(t *testing.T) {
	if err := (&Server{}).Serve(mustListen(t)); err == nil || !strings.Contains(err.Error(), "Backend is nil") {
		t.Errorf("Serve without Backend: %v", err)
	}
	ts := startServer(t, nilBackend{})
	m := dialRaw(t, ts)
	m.send('O', optnegPayload(6, fullActions, fullProtocol))
	m.expectClosed()
	ts.logs.waitFor(t, "backend returned a nil Session")
}
