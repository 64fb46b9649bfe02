package milter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// An SMTP session may idle between commands (a slow client, a long
	// DATA) while the MTA keeps the milter connection open.
	defaultReadTimeout  = 10 * time.Minute
	defaultWriteTimeout = 30 * time.Second

	// workerIdleTime is how long a connection goroutine that finished its
	// connection waits for the next one before it ends (see serveLoop).
	workerIdleTime = 30 * time.Second
)

// maxIdleWorkers bounds the connection goroutines kept waiting: enough for
// the MTA's usual concurrency to find one, without keeping a burst's worth
// of grown stacks alive.
func maxIdleWorkers() int32 { return int32(max(8, 4*runtime.GOMAXPROCS(0))) }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("milter: server closed")

// Server accepts MTA connections and runs one Session per connection.
type Server struct {
	Backend      Backend
	ReadTimeout  time.Duration // max wait for the next packet from the MTA (enforced to within 1/8); 0 means 10m
	WriteTimeout time.Duration // max time for one reply write (enforced to within 1/8); 0 means 30s
	MaxPacket    int           // max packet length accepted; 0 means 1 MiB; larger closes the connection
	Logger       *slog.Logger  // nil means slog.Default()

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	drained   chan struct{} // closed when conns becomes empty during Shutdown

	workersOnce sync.Once
	handoff     chan net.Conn // an idle connection goroutine takes the next connection here
	done        chan struct{} // closed by Shutdown and Close: idle connection goroutines end
	idle        atomic.Int32  // connection goroutines waiting on handoff
	started     atomic.Int64  // connection goroutines started (tests)
	workerIdle  time.Duration // workerIdleTime unless set (tests)
}

func (s *Server) initWorkers() {
	s.workersOnce.Do(func() {
		s.handoff = make(chan net.Conn)
		s.done = make(chan struct{})
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on ln until Shutdown or Close, then returns
// ErrServerClosed. Other accept errors end Serve and are returned; ln is
// closed in every case.
func (s *Server) Serve(ln net.Listener) error {
	if s.Backend == nil {
		ln.Close()
		return errors.New("milter: Server.Backend is nil")
	}
	if !s.trackListener(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrackListener(ln)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if isTransientAcceptError(err) {
				backoff = nextBackoff(backoff)
				s.logger().Warn("milter accept failed; retrying", "error", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			ln.Close()
			return err
		}
		backoff = 0
		s.dispatch(nc)
	}
}

// dispatch serves nc on an idle connection goroutine if one is waiting,
// else on a new one.
func (s *Server) dispatch(nc net.Conn) {
	s.initWorkers()
	select {
	case s.handoff <- nc:
	default:
		s.started.Add(1)
		go s.serveLoop(nc)
	}
}

// serveLoop serves nc, then waits up to workerIdleTime to serve the next
// connection. Why not a goroutine per connection: a goroutine's stack
// starts small and grows by copying to what a plugin call needs (wazero
// runs host functions on it), and Postfix opens a milter connection per
// SMTP session, so with one message per session the growth was ~5 % of
// the server's CPU. A goroutine that has served a connection keeps its
// grown stack for the next (until the collector shrinks an idle one).
func (s *Server) serveLoop(nc net.Conn) {
	wait := durationOr(s.workerIdle, workerIdleTime)
	idle := time.NewTimer(wait)
	defer idle.Stop()
	for {
		s.serveConn(nc)
		var ok bool
		if nc, ok = s.awaitConn(idle, wait); !ok {
			return
		}
	}
}

// awaitConn waits, as one of at most maxIdleWorkers, for the next
// connection; false when there are enough waiting already, when none came
// within wait, or when the server stops.
func (s *Server) awaitConn(idle *time.Timer, wait time.Duration) (net.Conn, bool) {
	if s.idle.Add(1) > maxIdleWorkers() {
		s.idle.Add(-1)
		return nil, false
	}
	defer s.idle.Add(-1)
	idle.Reset(wait)
	select {
	case nc := <-s.handoff:
		return nc, true
	case <-idle.C:
		return nil, false
	case <-s.done:
		return nil, false
	}
}

func (s *Server) serveConn(nc net.Conn) {
	if !s.trackConn(nc) {
		nc.Close()
		return
	}
	defer s.untrackConn(nc)
	h := newConnHandler(s, nc)
	defer h.release()
	defer nc.Close()
	h.serve()
}

// Shutdown stops accepting connections and waits for the open ones to end
// by themselves (the MTA closes them after its SMTP session). When ctx is
// done first, it closes them and returns ctx.Err(); their Sessions are then
// closed as soon as their current callback returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopWorkers()
	s.mu.Lock()
	s.closing = true
	err := s.closeListenersLocked()
	drained := s.drainedLocked()
	s.mu.Unlock()
	select {
	case <-drained:
		return err
	case <-ctx.Done():
		s.closeConns()
		return ctx.Err()
	}
}

// Close closes the listeners and all connections now.
func (s *Server) Close() error {
	s.stopWorkers()
	s.mu.Lock()
	s.closing = true
	err := s.closeListenersLocked()
	s.mu.Unlock()
	s.closeConns()
	return err
}

// stopWorkers ends the idle connection goroutines; busy ones end with
// their connection.
func (s *Server) stopWorkers() {
	s.initWorkers()
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// OpenSessions is the number of MTA connections being served.
func (s *Server) OpenSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) trackListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrackListener(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.listeners, ln)
}

func (s *Server) trackConn(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrackConn(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, nc)
	if len(s.conns) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// drainedLocked returns a channel closed once no connection is open.
func (s *Server) drainedLocked() <-chan struct{} {
	if len(s.conns) == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	return s.drained
}

func (s *Server) closeListenersLocked() error {
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		nc.Close()
	}
}

// isTransientAcceptError: running out of descriptors or a connection reset
// before accept must not stop the server.
func isTransientAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}
