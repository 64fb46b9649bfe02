package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
)

// buildBinary builds the command once per test process.
var binary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

func wasmilterBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "wasmilter-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "wasmilter")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		cmd.Dir = origWD
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// startServe runs `wasmilter serve` on a unix socket and waits until it listens.
// process is a started `wasmilter serve`; done closes when it exits.
type process struct {
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
	done chan struct{}
	err  error // valid once done is closed
}

func startServe(t *testing.T, shutdownTimeout string) (string, *process) {
	t.Helper()
	sock, p, _ := startServeWith(t, shutdownTimeout, "")
	return sock, p
}

// startServeWith runs `wasmilter serve` with more config appended, the
// admin API on a free loopback port (returned), and the ledger in a temp dir.
func startServeWith(t *testing.T, shutdownTimeout, extra string) (string, *process, string) {
	t.Helper()
	bin := wasmilterBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "milter.sock")
	adminAddr := freeLoopbackAddr(t)
	cfg := writeFile(t, dir, "w.toml", "[milter]\nlisten = \"unix:"+sock+"\"\nshutdown_timeout = \""+shutdownTimeout+
		"\"\n[runtime]\ncompilation_cache = \""+wasmtest.CompilationCacheDir(t)+"\"\n[admin]\nlisten = \""+adminAddr+"\"\n"+extra)
	return sock, startServeProcess(t, bin, cfg, sock), adminAddr
}

func mtaSession(t *testing.T, sock string) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClientWithOptions("unix", sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatalf("milter session: %v", err)
	}
	return s
}

func TestServeDrainsOnSIGTERM(t *testing.T) {
	sock, p := startServe(t, "20s")
	s := mtaSession(t, sock)
	if _, err := s.Mail("<alice@example.org>", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining: the listener closes, the open session goes on.
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "the listener to close after SIGTERM")
	select {
	case <-p.done:
		t.Fatalf("serve exited with a session still open: %v\n%s", p.err, p.logs)
	default:
	}
	if _, err := s.Rcpt("<bob@example.net>", nil); err != nil {
		t.Fatal(err)
	}
	var h textproto.Header
	h.Add("From", "alice@example.org")
	h.Add("Message-Id", "<drain@example.org>")
	if _, err := s.Header(h); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.End()
	if err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("end of message while draining: %v %+v\n%s", err, act, p.logs)
	}
	if len(mods) != 1 || !strings.EqualFold(mods[0].HeaderName, "X-Wasmilter-Stamp") {
		t.Fatalf("the in-flight message was not stamped: %+v\n%s", mods, p.logs)
	}
	s.Close()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("serve exit: %v\n%s", p.err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not exit after its last session closed\n%s", p.logs)
	}
	if !strings.Contains(p.logs.String(), "shutting down") || !strings.Contains(p.logs.String(), "stopped") {
		t.Errorf("logs do not tell the shutdown:\n%s", p.logs)
	}
}

func TestServeShutdownTimeoutClosesStuckSessions(t *testing.T) {
	sock, p := startServe(t, "1s")
	s := mtaSession(t, sock)
	defer s.Close()
	if _, err := s.Mail("<alice@example.org>", nil); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("serve exit: %v\n%s", p.err, p.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not give up on a stuck session after shutdown_timeout\n%s", p.logs)
	}
	if !strings.Contains(p.logs.String(), "shutdown timeout reached") {
		t.Errorf("logs do not say the timeout cut sessions:\n%s", p.logs)
	}
}

// startServeProcess starts `wasmilter serve -config cfg`, kills it at the end of the
// test, and returns once it accepts connections on sock. The socket file a
// killed server left behind refuses connections until a new server has
// replaced it, so a successful dial means this server is listening.
func startServeProcess(t *testing.T, bin, cfg, sock string) *process {
	t.Helper()
	p := &process{logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "-config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited early: %v\n%s", p.err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within 30s\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeLoopbackAddr finds a free port; another process could take it before
// the server binds it, which fails the test loudly rather than silently.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
