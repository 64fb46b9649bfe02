package dsn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/wasmilter/wasmilter/dsn"
)

// testMTA is a real SMTP server (go-smtp's) on loopback that records what
// it is sent and can be told to refuse at RCPT or at the end of DATA.
type testMTA struct {
	Addr string

	failAt string          // "RCPT" or "DATA"; "" accepts everything
	reply  *smtp.SMTPError // the refusal

	mu          sync.Mutex
	connections int
	messages    []received
}

// received is one accepted message, as the server saw it.
type received struct {
	from string
	to   []string
	data []byte
	helo string
	tls  bool
}

type mtaOption func(*testMTA, *smtp.Server)

func refuseAt(stage string, code int, enhanced smtp.EnhancedCode, text string) mtaOption {
	return func(m *testMTA, _ *smtp.Server) {
		m.failAt, m.reply = stage, &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
	}
}

func withTLS(cfg *tls.Config) mtaOption {
	return func(_ *testMTA, s *smtp.Server) { s.TLSConfig = cfg }
}

func startMTA(t *testing.T, opts ...mtaOption) *testMTA {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &testMTA{Addr: ln.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		m.mu.Lock()
		m.connections++
		m.mu.Unlock()
		return &mtaSession{mta: m, conn: c}, nil
	}))
	srv.Domain = "mta.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = newTestLogger(t)
	for _, o := range opts {
		o(m, srv)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
		<-served
	})
	return m
}

func (m *testMTA) received() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.messages...)
}

func (m *testMTA) connectionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connections
}

type mtaSession struct {
	mta  *testMTA
	conn *smtp.Conn
	msg  received
}

func (s *mtaSession) Reset()        { s.msg = received{} }
func (s *mtaSession) Logout() error { return nil }

func (s *mtaSession) Mail(from string, _ *smtp.MailOptions) error {
	_, tlsOn := s.conn.TLSConnectionState()
	s.msg = received{from: from, helo: s.conn.Hostname(), tls: tlsOn}
	return nil
}

func (s *mtaSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.mta.failAt == "RCPT" {
		return s.mta.reply
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *mtaSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.mta.failAt == "DATA" {
		return s.mta.reply
	}
	s.msg.data = data
	s.mta.mu.Lock()
	s.mta.messages = append(s.mta.messages, s.msg)
	s.mta.mu.Unlock()
	return nil
}

// testLogger sends the SMTP server's log to the test's, until the test
// ends: go-smtp's connection goroutines may still log (a reset by the
// client, say) after the test has returned, and testing panics then.
type testLogger struct {
	t    *testing.T
	mu   *sync.Mutex
	done *bool
}

func newTestLogger(t *testing.T) testLogger {
	l := testLogger{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		l.mu.Lock()
		*l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l testLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }
func (l testLogger) Println(v ...any)               { l.log(fmt.Sprintln(v...)) }

func (l testLogger) log(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !*l.done {
		l.t.Log("smtp server: " + s)
	}
}

// silentListener accepts connections and never says a word, like an MTA
// that hangs before its greeting. accepted receives each connection.
func silentListener(t *testing.T) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 4)
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			ch <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

func composedNotice(t *testing.T) []byte {
	t.Helper()
	n := delayNotice()
	// Lines a naive SMTP client would garble: dot-stuffing must be done.
	n.HumanText = "Your message is delayed.\n.\n.leading dot\n..two dots"
	return mustCompose(t, n)
}

func requireSubmitError(t *testing.T, err error) *dsn.SubmitError {
	t.Helper()
	var se *dsn.SubmitError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *dsn.SubmitError", err, err)
	}
	return se
}

func TestSubmitDeliversFromTheNullSender(t *testing.T) {
	mta := startMTA(t)
	msg := composedNotice(t)
	s := &dsn.Submitter{Addr: mta.Addr, HeloName: "mx.example.org", Timeout: 10 * time.Second}
	if err := s.Submit(context.Background(), "alice@example.com", msg); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	got := mta.received()
	if len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
	m := got[0]
	if m.from != "" {
		t.Errorf("MAIL FROM:<%s>, want the null sender <>", m.from)
	}
	if len(m.to) != 1 || m.to[0] != "alice@example.com" {
		t.Errorf("RCPT TO %v, want [alice@example.com]", m.to)
	}
	if m.helo != "mx.example.org" {
		t.Errorf("EHLO %q, want mx.example.org", m.helo)
	}
	if string(m.data) != string(msg) {
		t.Errorf("the MTA received\n%q\nwant the notice byte for byte\n%q", m.data, msg)
	}
	// The notice the MTA got still reads as the notice that was composed.
	if p := parseNotice(t, m.data); !strings.Contains(string(p.parts[0].body), "\r\n.leading dot\r\n..two dots") {
		t.Errorf("dot-stuffed lines did not survive: %q", p.parts[0].body)
	}
}

func TestSubmitRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stage     string
		code      int
		enhanced  smtp.EnhancedCode
		text      string
		op        string
		temporary bool

		wantEnhanced string
	}{
		{"greylisted at RCPT", "RCPT", 451, smtp.EnhancedCode{4, 7, 1}, "Greylisted, try later", "RCPT TO", true, "4.7.1"},
		{"unknown user at RCPT", "RCPT", 550, smtp.EnhancedCode{5, 1, 1}, "No such user", "RCPT TO", false, "5.1.1"},
		{"busy at end of DATA", "DATA", 452, smtp.EnhancedCode{4, 3, 1}, "Insufficient storage", "message", true, "4.3.1"},
		{"rejected at end of DATA", "DATA", 554, smtp.EnhancedCode{5, 7, 1}, "Content refused", "message", false, "5.7.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mta := startMTA(t, refuseAt(tc.stage, tc.code, tc.enhanced, tc.text))
			s := &dsn.Submitter{Addr: mta.Addr, Timeout: 10 * time.Second}
			err := s.Submit(context.Background(), "alice@example.com", composedNotice(t))
			se := requireSubmitError(t, err)
			want := dsn.SubmitError{Addr: mta.Addr, Op: tc.op, Code: tc.code, Enhanced: tc.wantEnhanced, Message: tc.text, Temporary: tc.temporary}
			if se.Addr != want.Addr || se.Op != want.Op || se.Code != want.Code || se.Enhanced != want.Enhanced ||
				se.Message != want.Message || se.Temporary != want.Temporary {
				t.Errorf("got  %+v\nwant %+v", *se, want)
			}
			var reply *smtp.SMTPError
			if !errors.As(err, &reply) || reply.Code != tc.code {
				t.Errorf("the server's reply is not reachable with errors.As: %v", err)
			}
			if n := len(mta.received()); n != 0 {
				t.Errorf("%d messages accepted by a refusing MTA", n)
			}
		})
	}
}

func TestSubmitConnectionRefusedIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	s := &dsn.Submitter{Addr: addr, Timeout: 10 * time.Second}
	se := requireSubmitError(t, s.Submit(context.Background(), "alice@example.com", []byte("Subject: x\r\n\r\nx\r\n")))
	if se.Op != "connect" || se.Code != 0 || !se.Temporary {
		t.Errorf("got %+v, want a temporary connect failure without a reply code", *se)
	}
	var opErr *net.OpError
	if !errors.As(se, &opErr) {
		t.Errorf("the network error is not reachable: %v", se)
	}
}

func TestSubmitTimesOutOnASilentServer(t *testing.T) {
	addr, _ := silentListener(t)
	s := &dsn.Submitter{Addr: addr, Timeout: 300 * time.Millisecond}
	err := s.Submit(context.Background(), "alice@example.com", composedNotice(t))
	se := requireSubmitError(t, err)
	if !se.Temporary || se.Code != 0 || se.Op != "EHLO" {
		t.Errorf("got %+v, want a temporary failure waiting for the greeting", *se)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("error %v does not wrap os.ErrDeadlineExceeded", err)
	}
}

func TestSubmitStopsWhenTheContextIsCancelled(t *testing.T) {
	addr, accepted := silentListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-accepted // the client is now waiting for a greeting that never comes
		cancel()
	}()
	s := &dsn.Submitter{Addr: addr, Timeout: time.Hour}
	err := s.Submit(ctx, "alice@example.com", composedNotice(t))
	se := requireSubmitError(t, err)
	if !errors.Is(err, context.Canceled) || !se.Temporary {
		t.Errorf("got %v (%+v), want a temporary error wrapping context.Canceled", err, *se)
	}
}

func TestSubmitRefusesBadInputWithoutConnecting(t *testing.T) {
	mta := startMTA(t)
	msg := composedNotice(t)
	for _, tc := range []struct {
		name, to string
		msg      []byte
		addr     string
	}{
		{"null sender", "", msg, mta.Addr},
		{"null sender in brackets", "<>", msg, mta.Addr},
		{"command injection", "alice@example.com>\r\nRCPT TO:<eve@example.org", msg, mta.Addr},
		{"empty message", "alice@example.com", nil, mta.Addr},
		{"no address", "alice@example.com", msg, ""},
	} {
		s := &dsn.Submitter{Addr: tc.addr, Timeout: 10 * time.Second}
		err := s.Submit(context.Background(), tc.to, tc.msg)
		if !errors.Is(err, dsn.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
		var se *dsn.SubmitError
		if errors.As(err, &se) {
			t.Errorf("%s: bad input reported as a submission failure %+v", tc.name, *se)
		}
	}
	if n := mta.connectionCount(); n != 0 {
		t.Errorf("%d connections for input that should never leave the process", n)
	}
}

func TestSubmitRequiresStartTLSWhenAsked(t *testing.T) {
	mta := startMTA(t) // offers no STARTTLS
	s := &dsn.Submitter{Addr: mta.Addr, StartTLS: true, Timeout: 10 * time.Second}
	se := requireSubmitError(t, s.Submit(context.Background(), "alice@example.com", composedNotice(t)))
	if se.Op != "STARTTLS" || !se.Temporary {
		t.Errorf("got %+v, want a temporary STARTTLS failure", *se)
	}
	if n := len(mta.received()); n != 0 {
		t.Errorf("the notice went out in the clear (%d messages) although TLS was required", n)
	}
}

func TestSubmitOverStartTLS(t *testing.T) {
	serverTLS, clientTLS := testCertificates(t)
	mta := startMTA(t, withTLS(serverTLS))
	s := &dsn.Submitter{Addr: mta.Addr, HeloName: "mx.example.org", StartTLS: true, TLSConfig: clientTLS, Timeout: 10 * time.Second}
	if err := s.Submit(context.Background(), "alice@example.com", composedNotice(t)); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	got := mta.received()
	if len(got) != 1 || !got[0].tls || got[0].helo != "mx.example.org" {
		t.Fatalf("received %+v, want one message over TLS after EHLO mx.example.org", got)
	}
}

func TestSubmitOverStartTLSChecksTheCertificate(t *testing.T) {
	serverTLS, _ := testCertificates(t)
	mta := startMTA(t, withTLS(serverTLS))
	// Default verification: the self-signed test certificate is not trusted.
	s := &dsn.Submitter{Addr: mta.Addr, StartTLS: true, Timeout: 10 * time.Second}
	err := s.Submit(context.Background(), "alice@example.com", composedNotice(t))
	se := requireSubmitError(t, err)
	if !se.Temporary || len(mta.received()) != 0 {
		t.Errorf("got %+v, want a temporary failure and nothing sent to an unverified server", *se)
	}
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Errorf("error %v is not about the unknown certificate authority", err)
	}
}

// testCertificates makes a self-signed certificate for 127.0.0.1: the
// server's configuration and a client configuration that trusts it.
func testCertificates(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mta.test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}
