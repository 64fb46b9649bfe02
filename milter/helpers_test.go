package milter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/internal/syncbuf"
)

// eventLog is shared by all sessions of one test backend; tests read it
// from their own goroutine.
type eventLog struct {
	mu      sync.Mutex
	events  []string
	closes  int // Session.Close calls
	awaited int // closes already consumed by waitClosed
}

func newEventLog() *eventLog { return &eventLog{} }

func (l *eventLog) closeCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closes
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// waitClosed waits for n more Session.Close calls.
func (l *eventLog) waitClosed(t testing.TB, n int) {
	t.Helper()
	l.mu.Lock()
	l.awaited += n
	want := l.awaited
	l.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for l.closeCount() < want {
		if time.Now().After(deadline) {
			t.Fatalf("Session.Close called %d times, want %d; events: %q", l.closeCount(), want, l.snapshot())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// testBackend builds recording sessions. Hooks let a test choose replies.
type testBackend struct {
	log   *eventLog
	needs Needs
	// Optional hooks; nil means Continue.
	onMail func(s *testSession, from string) Reply
	onRcpt func(s *testSession, to string) Reply
	onHelo func(s *testSession, name string) Reply
	onEOH  func(s *testSession) Reply
	onEOM  func(s *testSession) (Reply, []Modification)
	// macrosAtEOM are looked up and recorded at end of message.
	macrosAtEOM []string

	mu       sync.Mutex
	sessions int
}

func newTestBackend(needs Needs) *testBackend {
	return &testBackend{log: newEventLog(), needs: needs}
}

func allNeeds() Needs {
	return Needs{Connect: true, Helo: true, Mail: true, Rcpt: true, Headers: true, Body: true,
		Actions: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptAddRcpt |
			gomilter.OptRemoveRcpt | gomilter.OptQuarantine | gomilter.OptChangeFrom |
			gomilter.OptAddRcptWithArgs}
}

func (b *testBackend) NewSession(c *Conn) Session {
	b.mu.Lock()
	b.sessions++
	id := b.sessions
	b.mu.Unlock()
	b.log.add("new session %d version=%d", id, c.Version())
	return &testSession{b: b, c: c, id: id}
}

type testSession struct {
	b       *testBackend
	c       *Conn
	id      int
	headers int // per message
	body    int // per message
}

func (s *testSession) Needs() Needs { return s.b.needs }

func (s *testSession) Connect(ci ConnInfo) Reply {
	s.b.log.add("connect host=%s family=%s port=%d addr=%s", ci.Host, ci.Family, ci.Port, ci.Addr)
	return Reply{}
}

func (s *testSession) Helo(name string) Reply {
	s.b.log.add("helo %s", name)
	if s.b.onHelo != nil {
		return s.b.onHelo(s, name)
	}
	return Reply{}
}

func (s *testSession) Mail(from string, args []string) Reply {
	s.headers, s.body = 0, 0
	s.b.log.add("mail <%s> %q", from, args)
	if s.b.onMail != nil {
		return s.b.onMail(s, from)
	}
	return Reply{}
}

func (s *testSession) Rcpt(to string, args []string) Reply {
	s.b.log.add("rcpt <%s> %q", to, args)
	if s.b.onRcpt != nil {
		return s.b.onRcpt(s, to)
	}
	return Reply{}
}

func (s *testSession) Header(name, value string) {
	s.headers++
	s.b.log.add("header %s: %s", name, value)
}

func (s *testSession) EndOfHeaders() Reply {
	s.b.log.add("eoh headers=%d", s.headers)
	if s.b.onEOH != nil {
		return s.b.onEOH(s)
	}
	return Reply{}
}

func (s *testSession) BodyChunk(chunk []byte) Reply {
	s.body += len(chunk)
	s.b.log.add("body %d", len(chunk))
	return Reply{}
}

func (s *testSession) EndOfMessage() (Reply, []Modification) {
	var macros []string
	for _, name := range s.b.macrosAtEOM {
		v, ok := s.c.Macro(name)
		macros = append(macros, fmt.Sprintf("%s=%s/%v", name, v, ok))
	}
	s.b.log.add("eom headers=%d body=%d macros=%v", s.headers, s.body, macros)
	if s.b.onEOM != nil {
		return s.b.onEOM(s)
	}
	return Reply{}, nil
}

func (s *testSession) Abort() { s.b.log.add("abort") }

func (s *testSession) Close() {
	s.b.log.add("close %d", s.id)
	s.b.log.mu.Lock()
	s.b.log.closes++
	s.b.log.mu.Unlock()
}

// testLog collects the server's log from its goroutines.
type testLog struct{ syncbuf.Buffer }

// waitFor polls until the log contains s (log lines are written by the
// connection goroutine, possibly after the client saw the close).
func (b *testLog) waitFor(t testing.TB, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q; log:\n%s", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testServer struct {
	srv     *Server
	addr    string
	network string
	logs    *testLog
	served  chan error
}

// startServer serves backend on a loopback TCP port.
func startServer(t testing.TB, backend Backend, configure ...func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, backend, configure...)
}

func serveOn(t testing.TB, ln net.Listener, backend Backend, configure ...func(*Server)) *testServer {
	t.Helper()
	logs := &testLog{}
	srv := &Server{
		Backend: backend,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(srv)
	}
	ts := &testServer{srv: srv, addr: ln.Addr().String(), network: ln.Addr().Network(), logs: logs, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-ts.served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

// fullOffer is what Postfix 3.x offers with milter_protocol = 6.
const (
	fullActions  = gomilter.OptAction(0x1ff)
	fullProtocol = gomilter.OptProtocol(0x1fffff)
)

func (ts *testServer) client(t testing.TB, actions gomilter.OptAction, protocol gomilter.OptProtocol) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClientWithOptions(ts.network, ts.addr, gomilter.ClientOptions{
		Dialer:       &net.Dialer{Timeout: 5 * time.Second},
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		ActionMask:   actions,
		ProtocolMask: protocol,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatalf("client session: %v", err)
	}
	return s
}

// rawMTA speaks the wire format directly, for what go-milter's client
// cannot do (DATA, QUIT_NC, old versions, malformed input).
type rawMTA struct {
	t    testing.TB
	conn net.Conn
}

func dialRaw(t testing.TB, ts *testServer) *rawMTA {
	t.Helper()
	c, err := net.DialTimeout(ts.network, ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawMTA{t: t, conn: c}
}

func packet(cmd byte, payload ...string) []byte {
	data := strings.Join(payload, "")
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	b = append(b, cmd)
	return append(b, data...)
}

func optnegPayload(version uint32, actions gomilter.OptAction, protocol gomilter.OptProtocol) string {
	b := binary.BigEndian.AppendUint32(nil, version)
	b = binary.BigEndian.AppendUint32(b, uint32(actions))
	b = binary.BigEndian.AppendUint32(b, uint32(protocol))
	return string(b)
}

func (m *rawMTA) send(cmd byte, payload ...string) {
	m.t.Helper()
	m.write(packet(cmd, payload...))
}

func (m *rawMTA) write(b []byte) {
	m.t.Helper()
	m.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.conn.Write(b); err != nil {
		m.t.Fatalf("write: %v", err)
	}
}

func (m *rawMTA) recv() (byte, string) {
	m.t.Helper()
	cmd, data, err := m.tryRecv()
	if err != nil {
		m.t.Fatalf("read reply: %v", err)
	}
	return cmd, data
}

func (m *rawMTA) tryRecv() (byte, string, error) {
	m.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head [4]byte
	if _, err := io.ReadFull(m.conn, head[:]); err != nil {
		return 0, "", err
	}
	buf := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(m.conn, buf); err != nil {
		return 0, "", err
	}
	return buf[0], string(buf[1:]), nil
}

// expect reads one reply and checks its code and payload.
func (m *rawMTA) expect(cmd byte, payload string) {
	m.t.Helper()
	got, data := m.recv()
	if got != cmd || data != payload {
		m.t.Fatalf("reply %q %q, want %q %q", got, data, cmd, payload)
	}
}

// negotiate sends an offer and returns the server's answer.
func (m *rawMTA) negotiate(version uint32, actions gomilter.OptAction, protocol gomilter.OptProtocol) optneg {
	m.t.Helper()
	m.send('O', optnegPayload(version, actions, protocol))
	cmd, data := m.recv()
	if cmd != 'O' {
		m.t.Fatalf("negotiation reply %q", cmd)
	}
	o, err := decodeOptneg([]byte(data))
	if err != nil {
		m.t.Fatal(err)
	}
	return o
}

// expectClosed waits for the server to close the connection.
func (m *rawMTA) expectClosed() {
	m.t.Helper()
	for {
		_, _, err := m.tryRecv()
		if err == nil {
			continue // a reply queued before the error; keep reading
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			m.t.Fatal("server did not close the connection")
		}
		return
	}
}

func connectPayload(host string, family byte, port uint16, addr string) string {
	b := append([]byte(host), 0, family)
	if family != 'U' {
		b = binary.BigEndian.AppendUint16(b, port)
		b = append(append(b, addr...), 0)
	}
	return string(b)
}

func cstr(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return b.String()
}

func shutdownCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantEvents(t testing.TB, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
