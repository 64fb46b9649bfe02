package milter_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/loadgen"
	"github.com/wasmilter/wasmilter/milter"
)

// TestThousandConcurrentConnections: 1,000 MTA connections open at the same
// time are all served. The backend holds every session at MAIL until all
// 1,000 have reached it (a barrier), so the test proves they were open
// together, not served one after another; then each finishes a whole
// message, Postfix-style (loadgen), and gets its header added.
func TestThousandConcurrentConnections(t *testing.T) {
	const conns = 1000
	b := &barrierBackend{want: conns, all: make(chan struct{})}
	srv := &milter.Server{Backend: b, ReadTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})

	// Bounded: the barrier gives up after a minute, loadgen's timeouts
	// bound every read and write, and the whole run has a duration cap.
	res, err := loadgen.Run(context.Background(), loadgen.Config{Milter: "unix:" + sock, Concurrency: conns,
		Messages: conns, MessagesPerConn: 1, NoBody: true, Timeout: 2 * time.Minute, Duration: 3 * time.Minute})
	if err != nil {
		t.Fatalf("load: %v (result %+v)", err, res)
	}
	if res.Messages != conns || res.Errors != 0 || res.Sessions != conns {
		t.Fatalf("%d messages, %d errors, %d sessions; want %d, 0, %d", res.Messages, res.Errors, res.Sessions, conns, conns)
	}
	if res.Modifications[loadgen.ModAddHeader] != conns {
		t.Errorf("modifications %v, want %d add_header", res.Modifications, conns)
	}
	// Sessions close when the server has read each QUIT, just after the
	// load generator sent it.
	var peak, closed int
	var timedOut bool
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		peak, closed, timedOut = b.peak, b.closed, b.timedOut
		b.mu.Unlock()
		if closed == conns || time.Now().After(deadline) {
			break
		}
	}
	if peak != conns || timedOut {
		t.Fatalf("at most %d sessions were at MAIL together (barrier timed out: %v), want %d", peak, timedOut, conns)
	}
	if closed != conns {
		t.Errorf("%d sessions closed, want %d", closed, conns)
	}
	t.Logf("%d connections open at once, %d messages in %.1fs", peak, res.Messages, res.ElapsedSeconds)
}

// barrierBackend's sessions wait at MAIL until want sessions are there.
type barrierBackend struct {
	want int
	all  chan struct{}

	mu       sync.Mutex
	waiting  int
	peak     int
	closed   int
	timedOut bool
}

func (b *barrierBackend) NewSession(*milter.Conn) milter.Session { return &barrierSession{b: b} }

func (b *barrierBackend) arrive() {
	b.mu.Lock()
	b.waiting++
	b.peak = max(b.peak, b.waiting)
	if b.waiting == b.want {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(time.Minute):
		b.mu.Lock()
		b.timedOut = true
		b.mu.Unlock()
	}
}

type barrierSession struct{ b *barrierBackend }

func (s *barrierSession) Needs() milter.Needs {
	return milter.Needs{Mail: true, Headers: true, Actions: gomilter.OptAddHeader}
}
func (s *barrierSession) Connect(milter.ConnInfo) milter.Reply { return milter.Reply{} }
func (s *barrierSession) Helo(string) milter.Reply             { return milter.Reply{} }
func (s *barrierSession) Mail(string, []string) milter.Reply {
	s.b.arrive()
	return milter.Reply{}
}
func (s *barrierSession) Rcpt(string, []string) milter.Reply { return milter.Reply{} }
func (s *barrierSession) Header(string, string)              {}
func (s *barrierSession) EndOfHeaders() milter.Reply         { return milter.Reply{} }
func (s *barrierSession) BodyChunk([]byte) milter.Reply      { return milter.Reply{} }
func (s *barrierSession) EndOfMessage() (milter.Reply, []milter.Modification) {
	return milter.Reply{}, []milter.Modification{{Kind: milter.AddHeader, Name: "X-Seen", Value: "yes"}}
}
func (s *barrierSession) Abort() {}
func (s *barrierSession) Close() {
	s.b.mu.Lock()
	s.b.closed++
	s.b.mu.Unlock()
}
