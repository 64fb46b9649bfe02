package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a new server may take to answer PING.
const startTimeout = 10 * time.Second

// Server is a redis-server started for one test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	// sentinelConf is the config file of a Sentinel (StartSentinel); ""
	// for a data server.
	sentinelConf string
	// replicaOf is the master's address of a replica (StartReplica).
	replicaOf string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start runs a new redis-server for t on a free loopback port with its data
// in t.TempDir(), waits until it answers PING and stops it when t ends. It
// skips or fails t (see Require) when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer(t)
	s.startOnFreePort(t)
	return s
}

// StartSentinel runs a Redis Sentinel (redis-server in sentinel mode) for
// t that monitors master under the name masterName, with a quorum of one,
// and waits until it answers PING and knows the master.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	s := newServer(t)
	// Sentinel rewrites its config file as it learns, so it is its own.
	s.sentinelConf = filepath.Join(s.dir, "sentinel.conf")
	host, port, _ := net.SplitHostPort(master.Addr())
	conf := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n", masterName, host, port, masterName)
	if err := os.WriteFile(s.sentinelConf, []byte(conf), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s.startOnFreePort(t)
	return s
}

// StartReplica runs a redis-server for t that replicates master, as
// durable as Start's, and waits until it answers PING.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	s := newServer(t)
	s.replicaOf = master.Addr()
	s.startOnFreePort(t)
	return s
}

// newServer is a Server for t with its own data directory, not started;
// it skips or fails t (see Require) when redis-server is not installed.
func newServer(t testing.TB) *Server {
	t.Helper()
	Require(t)
	bin, err := serverPath()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return &Server{t: t, bin: bin, dir: t.TempDir()}
}

// startOnFreePort launches the server on a free loopback port.
func (s *Server) startOnFreePort(t testing.TB) {
	t.Helper()
	t.Cleanup(s.stop)
	// The free port is free when asked, not necessarily a moment later:
	// another process may take it first, so try a few.
	for try := 0; ; try++ {
		s.port = freeLoopbackPort(t)
		err := s.launch()
		if err == nil {
			return
		}
		if try == 2 {
			t.Fatalf("redistest: %v", err)
		}
		t.Logf("redistest: %v; trying another port", err)
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's redis:// URL, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir is the server's data directory (the append-only files are below it).
func (s *Server) Dir() string { return s.dir }

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// is gone. What it acknowledged is on disk (appendfsync always).
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatal("redistest: Kill: the server is not running")
	}
	s.killLocked()
}

// Restart starts the server again on the same port and directory, after a
// Kill, and waits until it answers PING (it has then loaded its data).
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause freezes the server with SIGSTOP: connections are still accepted by
// the kernel but nothing is answered, like a Redis stalled on its disk.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %v: the server is not running", sig)
	}
	if err := s.proc.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// launch starts redis-server and waits for its first PONG.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("the server is running already")
	}
	log, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.proc, s.done = cmd, done
	if err := s.awaitPong(done); err != nil {
		s.killLocked()
		return fmt.Errorf("redis-server on %s: %w; its log ends:\n%s", s.Addr(), err, s.logTail())
	}
	return nil
}

// args are redis-server's arguments: a data server that keeps what it
// acknowledges (appendfsync always), or a Sentinel.
func (s *Server) args() []string {
	common := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--daemonize", "no", "--logfile", ""}
	if s.sentinelConf != "" {
		return append([]string{s.sentinelConf, "--sentinel"}, common...)
	}
	args := append(common, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if s.replicaOf != "" {
		host, port, _ := net.SplitHostPort(s.replicaOf)
		args = append(args, "--replicaof", host, port)
	}
	return args
}

// awaitPong polls until the server answers PING, exits, or startTimeout.
func (s *Server) awaitPong(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := s.Do("PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		select {
		case <-done:
			return errors.New("exited before answering PING")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v (last: %q, %v)", startTimeout, reply, err)
		}
	}
}

// killLocked SIGKILLs the process and waits for it; s.mu is held.
func (s *Server) killLocked() {
	s.proc.Process.Kill()
	<-s.done
	s.proc, s.done = nil, nil
}

// stop is the cleanup: kill whatever still runs.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.killLocked()
	}
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "redis.log") }

// logTail returns the end of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// Do sends one command on a new connection and returns the reply: a
// simple string, an integer or a bulk string as text; an error reply as an
// error. It is a minimal client for checks and setup (CONFIG SET, INFO),
// so that this package needs no Redis library; arrays are not supported.
func (s *Server) Do(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one RESP2 reply that is not an array.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch kind, rest := line[0], line[1:]; kind {
	case '+', ':':
		return rest, nil
	case '-':
		return "", fmt.Errorf("redis: %s", rest)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return "", fmt.Errorf("nil or malformed bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unsupported reply %q", line)
	}
}

// freeLoopbackPort asks the kernel for a port free on 127.0.0.1 now.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
