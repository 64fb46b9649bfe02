package loadgen

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/milter"
)

// quick is a small bounded run against spec.
func quick(spec string, n int) Config {
	return Config{Milter: spec, Concurrency: 4, Messages: n, Duration: 30 * time.Second,
		MessagesPerConn: 5, Timeout: 5 * time.Second}
}

// listen opens a loopback TCP or a unix socket in a temporary directory
// and returns it with its milter address.
func listen(t testing.TB, network string) (net.Listener, string) {
	t.Helper()
	var ln net.Listener
	var err error
	var spec string
	switch network {
	case "unix":
		path := filepath.Join(shortTempDir(t), "m.sock")
		ln, err = net.Listen("unix", path)
		spec = "unix:" + path
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			spec = "inet:" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return ln, spec
}

// shortTempDir: unix socket paths are limited to ~100 bytes, and
// t.TempDir's can be longer.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	d, err := os.MkdirTemp("", "lg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startGoMilter serves a go-milter v0.5.0 server.
func startGoMilter(t testing.TB, network string, srv *gomilter.Server) string {
	t.Helper()
	ln, spec := listen(t, network)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return spec
}

func noopServer() *gomilter.Server {
	return &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}
}

// startOurs serves wasmilter's milter.Server with backend.
func startOurs(t testing.TB, network string, backend milter.Backend) string {
	t.Helper()
	ln, spec := listen(t, network)
	srv := &milter.Server{Backend: backend, Logger: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, milter.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return spec
}

// backend is a configurable policy for wasmilter's server, recording what
// it was given.
type backend struct {
	needs   milter.Needs
	connect milter.Reply
	mail    milter.Reply
	rcpt    func(to string) milter.Reply
	eom     func() (milter.Reply, []milter.Modification)

	mu         sync.Mutex
	messages   int
	headers    []int    // header fields per message
	bodyBytes  []int    // body bytes per message
	queueIDs   []string // macro i at end of message
	messageIDs map[string]bool
}

func newBackend() *backend {
	return &backend{
		needs: milter.Needs{Connect: true, Helo: true, Mail: true, Rcpt: true, Headers: true, Body: true,
			Actions: gomilter.OptAddHeader | gomilter.OptChangeHeader},
		messageIDs: map[string]bool{},
	}
}

func (b *backend) NewSession(c *milter.Conn) milter.Session { return &backendSession{b: b, c: c} }

type backendSession struct {
	b         *backend
	c         *milter.Conn
	headers   int
	body      int
	messageID string
}

func (s *backendSession) Needs() milter.Needs                  { return s.b.needs }
func (s *backendSession) Connect(milter.ConnInfo) milter.Reply { return s.b.connect }
func (s *backendSession) Helo(string) milter.Reply             { return milter.Reply{} }
func (s *backendSession) Mail(string, []string) milter.Reply {
	s.headers, s.body = 0, 0
	return s.b.mail
}
func (s *backendSession) Rcpt(to string, _ []string) milter.Reply {
	if s.b.rcpt != nil {
		return s.b.rcpt(to)
	}
	return milter.Reply{}
}
func (s *backendSession) Header(name, value string) {
	s.headers++
	if name == "Message-ID" {
		s.messageID = value
	}
}
func (s *backendSession) EndOfHeaders() milter.Reply      { return milter.Reply{} }
func (s *backendSession) BodyChunk(c []byte) milter.Reply { s.body += len(c); return milter.Reply{} }
func (s *backendSession) Abort()                          {}
func (s *backendSession) Close()                          {}
func (s *backendSession) EndOfMessage() (milter.Reply, []milter.Modification) {
	qid, _ := s.c.Macro("i")
	s.b.mu.Lock()
	s.b.messages++
	s.b.headers = append(s.b.headers, s.headers)
	s.b.bodyBytes = append(s.b.bodyBytes, s.body)
	s.b.queueIDs = append(s.b.queueIDs, qid)
	s.b.messageIDs[s.messageID] = true
	s.b.mu.Unlock()
	if s.b.eom != nil {
		return s.b.eom()
	}
	return milter.Reply{}, nil
}

// rawMilter is a hand-driven milter for answers no real server gives: it
// negotiates version 6 with nothing asked, answers every event with
// continue, and hands the event named by at to misbehave instead.
func rawMilter(t testing.TB, at byte, misbehave func(c net.Conn)) string {
	t.Helper()
	ln, spec := listen(t, "tcp")
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveRaw(c, at, misbehave)
			}()
		}
	}()
	return spec
}

func serveRaw(c net.Conn, at byte, misbehave func(c net.Conn)) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		cmd, _, err := readPacket(c)
		if err != nil {
			return
		}
		switch {
		case cmd == at:
			misbehave(c)
			return
		case cmd == 'O':
			writePacket(c, 'O', optneg(6, 0, 0))
		case cmd == 'D' || cmd == 'A':
		case cmd == 'Q':
			return
		default:
			writePacket(c, 'c', nil)
		}
	}
}

func optneg(version uint32, actions gomilter.OptAction, protocol gomilter.OptProtocol) []byte {
	b := binary.BigEndian.AppendUint32(nil, version)
	b = binary.BigEndian.AppendUint32(b, uint32(actions))
	return binary.BigEndian.AppendUint32(b, uint32(protocol))
}

func readPacket(c net.Conn) (byte, []byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, nil, err
	}
	if len(buf) == 0 {
		return 0, nil, errors.New("empty packet")
	}
	return buf[0], buf[1:], nil
}

func writePacket(c net.Conn, cmd byte, data []byte) {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	c.Write(append(append(b, cmd), data...))
}
