package mtatest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Received is one message as the sink saw it on the wire.
type Received struct {
	From string
	To   []string
	Data []byte // the message as transmitted, dot-unstuffed, CRLF line ends
}

// Sink is an in-process SMTP server on 127.0.0.1 that accepts and keeps
// every message. It plays the next hop an MTA relays to, so a test can look
// at what the MTA (and the milter in front of it) finally let through.
type Sink struct {
	Addr string // host:port to relay to

	mu       sync.Mutex
	messages []Received
	arrived  chan struct{} // closed and replaced whenever a message arrives
}

// StartSink starts a sink on a free loopback port; it is closed in t.Cleanup.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mtatest: sink listen: %v", err)
	}
	s := &Sink{Addr: ln.Addr().String(), arrived: make(chan struct{})}

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "sink.wasmilter.test"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 32 << 20
	srv.MaxRecipients = 1000
	logger := &testLogger{t: t}
	srv.ErrorLog = logger

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		logger.stop()
		_ = srv.Close()
		// srv.Close only closes listeners Serve has registered; if the
		// test ends before the Serve goroutine ran, only this ends it.
		_ = ln.Close()
		if err := <-served; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Logf("mtatest: sink stopped: %v", err)
		}
	})
	return s
}

// Messages returns a copy of what has arrived so far, in arrival order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// Wait blocks until at least n messages have arrived and returns them all;
// it fails the test if that does not happen within timeout.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.messages), s.arrived
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mtatest: sink %s: %d of %d messages after %v", s.Addr, got, n, timeout)
			return nil
		}
	}
}

func (s *Sink) store(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// sinkSession collects one transaction at a time.
type sinkSession struct {
	sink *Sink
	from string
	to   []string
}

func (ss *sinkSession) Reset() { ss.from, ss.to = "", nil }

func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	ss.sink.store(Received{From: ss.from, To: append([]string(nil), ss.to...), Data: buf.Bytes()})
	return nil
}

// testLogger routes go-smtp's error log to the test log until stopped:
// connection goroutines can outlive the test, and logging to a finished test
// panics.
type testLogger struct {
	t       testing.TB
	stopped atomic.Bool
}

func (l *testLogger) stop() { l.stopped.Store(true) }

func (l *testLogger) Printf(format string, v ...interface{}) {
	if !l.stopped.Load() {
		l.t.Logf("mtatest sink: "+format, v...)
	}
}

func (l *testLogger) Println(v ...interface{}) {
	if !l.stopped.Load() {
		l.t.Log(append([]interface{}{"mtatest sink:"}, v...)...)
	}
}
