package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/loadgen"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/server"
)

// reloadFixture is a served server whose config file the test rewrites.
type reloadFixture struct {
	t     *testing.T
	dir   string
	sock  string
	hello string
	path  string
	srv   *server.Server
	done  chan error
}

func newReloadFixture(t *testing.T) *reloadFixture {
	dir := t.TempDir()
	f := &reloadFixture{t: t, dir: dir, sock: filepath.Join(dir, "milter.sock"), path: filepath.Join(dir, "w.toml"),
		hello: filepath.Join(dir, "hello.wasm"), done: make(chan error, 1)}
	if err := os.WriteFile(f.hello, wasmtest.BuildGo(t, "./examples/hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.write("gen0", f.hello)
	cfg, err := config.Load(f.path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.srv, err = server.Build(context.Background(), cfg, server.Options{Logger: log,
		LoadConfig: func() (*config.Config, error) { return config.Load(f.path) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := f.srv.Listen()
	if err != nil {
		f.srv.Release()
		t.Fatal(err)
	}
	go func() { f.done <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
		if err := <-f.done; !errors.Is(err, milter.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// write writes the config with the hello plugin greeting with greeting.
func (f *reloadFixture) write(greeting, plugin string) {
	toml := fmt.Sprintf(`[milter]
listen = "unix:%s"
[runtime]
compilation_cache = %q
[retry]
store = "bolt:ledger.db"
[admin]
listen = ""
[[plugins]]
name = "hello"
path = %q
[plugins.config]
greeting = %q
`, f.sock, wasmtest.CompilationCacheDir(f.t), plugin, greeting)
	if err := os.WriteFile(f.path, []byte(toml), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// open starts an MTA session up to the end of the header.
func (f *reloadFixture) open(id string) *gomilter.ClientSession {
	f.t.Helper()
	c := gomilter.NewClientWithOptions("unix", f.sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := s.Mail("<alice@example.org>", nil); err != nil {
		f.t.Fatal(err)
	}
	if _, err := s.Rcpt("<bob@example.net>", nil); err != nil {
		f.t.Fatal(err)
	}
	var h textproto.Header
	h.Add("From", "alice@example.org")
	h.Add("Message-Id", "<"+id+"@example.org>")
	if _, err := s.Header(h); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// greeting ends the message and returns the X-Hello value it got.
func greeting(t *testing.T, s *gomilter.ClientSession) string {
	t.Helper()
	defer s.Close()
	mods, act, err := s.End()
	if err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("end of message: %v %+v", err, act)
	}
	for _, m := range mods {
		if strings.EqualFold(m.HeaderName, "X-Hello") {
			return m.HeaderValue
		}
	}
	t.Fatalf("no X-Hello among %+v", mods)
	return ""
}

// TestReloadUnderLoad: 20 reloads while 8 MTA connections send messages
// without pause: not one session fails, a message in flight across a reload
// finishes on the plugins it started with, a new one gets the new config,
// and a config that does not build is refused while the old one serves on.
func TestReloadUnderLoad(t *testing.T) {
	f := newReloadFixture(t)
	inFlight := f.open("inflight")

	ctx, stop := context.WithCancel(context.Background())
	var res *loadgen.Result
	var loadErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		res, loadErr = loadgen.Run(ctx, loadgen.Config{Milter: "unix:" + f.sock, Concurrency: 8,
			Duration: time.Minute, MessagesPerConn: 3, Timeout: 20 * time.Second})
	})
	const reloads = 20
	for i := 1; i <= reloads; i++ {
		time.Sleep(50 * time.Millisecond)
		f.write(fmt.Sprintf("gen%d", i), f.hello)
		restart, err := f.srv.ReloadConfig(context.Background())
		if err != nil || len(restart) != 0 {
			t.Fatalf("reload %d: %v, restart needed %v", i, err, restart)
		}
		if i == reloads/2 {
			f.write("broken", filepath.Join(f.dir, "missing.wasm"))
			if _, err := f.srv.ReloadConfig(context.Background()); err == nil || !strings.Contains(err.Error(), "missing.wasm") {
				t.Errorf("a config naming a missing plugin: %v, want refused, naming the file", err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	if res == nil {
		t.Fatalf("load: %v", loadErr)
	}
	if res.Errors != 0 || res.Messages == 0 {
		t.Fatalf("under %d reloads: %d messages, %d failed (%v): %v", reloads, res.Messages, res.Errors, res.ErrorSamples, loadErr)
	}
	t.Logf("%d messages in %d sessions across %d reloads, none failed", res.Messages, res.Sessions, reloads)

	if got := greeting(t, inFlight); got != "gen0" {
		t.Errorf("the message in flight since before the reloads got %q, want gen0's greeting", got)
	}
	if got := greeting(t, f.open("after")); got != fmt.Sprintf("gen%d", reloads) {
		t.Errorf("a message after the reloads got %q, want gen%d", got, reloads)
	}
}

// TestReloadReportsWhatNeedsARestart: a changed listener is left as it is
// and named; the rest of the config applies.
func TestReloadReportsWhatNeedsARestart(t *testing.T) {
	f := newReloadFixture(t)
	f.write("new", f.hello)
	b, _ := os.ReadFile(f.path)
	os.WriteFile(f.path, append(b, "[log]\nlevel = \"debug\"\n"...), 0o644)
	restart, err := f.srv.ReloadConfig(context.Background())
	if err != nil || len(restart) != 1 || restart[0] != "log" {
		t.Fatalf("reload with a changed [log]: %v, restart needed %v", err, restart)
	}
	if got := greeting(t, f.open("x")); got != "new" {
		t.Errorf("greeting %q after the reload, want new", got)
	}
}
