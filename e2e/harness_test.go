package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/server"
)

// filter is a wasmilter server running in this test process.
type filter struct {
	srv     *server.Server
	addr    net.Addr
	done    chan error
	stopped bool
}

// postfixSpec is the filter's address in Postfix notation.
func (f *filter) postfixSpec() string {
	if f.addr.Network() == "unix" {
		return "unix:" + f.addr.String()
	}
	return "inet:" + f.addr.String()
}

// sendmailSpec is the filter's address in Sendmail notation.
func (f *filter) sendmailSpec() string {
	if f.addr.Network() == "unix" {
		return "local:" + f.addr.String()
	}
	host, port, _ := net.SplitHostPort(f.addr.String())
	return "inet:" + port + "@" + host
}

// startFilter builds a server from a config overlaying the defaults and
// serves it. The listen address in the config is used as written; with
// listen left out, a free loopback port is taken.
func startFilter(t *testing.T, toml string) *filter {
	t.Helper()
	return startFilterIn(t, toml, t.TempDir(), server.Options{})
}

// startFilterIn is startFilter with relative paths resolved in dir (so a
// restarted server finds the same ledger) and options for the server.
func startFilterIn(t *testing.T, toml, dir string, opts server.Options) *filter {
	t.Helper()
	cfg, err := config.Parse([]byte(toml), "e2e.toml", dir)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	if !strings.Contains(toml, "compilation_cache") {
		cfg.Runtime.CompilationCache = wasmtest.CompilationCacheDir(t)
	}
	// These tests prove the mail flow, not deadlines (the runaway-plugin
	// test sets its own): on a loaded 2-core machine under the race
	// detector, a Go guest's garbage collection can outlast the 100 ms
	// default and turn a pass into the stamp plugin's tempfail.
	for i := range cfg.Plugins {
		if cfg.Plugins[i].Timeout.Duration == config.DefaultPluginTimeout {
			cfg.Plugins[i].Timeout.Duration = 2 * time.Second
		}
	}
	opts.Logger = testLogger(t)
	if !strings.Contains(toml, "listen") {
		opts.Listener = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	}
	srv, err := server.Build(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("build:\n%v", err)
	}
	ln, err := srv.Listen()
	if err != nil {
		srv.Release()
		t.Fatal(err)
	}
	f := &filter{srv: srv, addr: ln.Addr(), done: make(chan error, 1)}
	go func() { f.done <- srv.Serve(ln) }()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop shuts the server down; stopping twice is harmless.
func (f *filter) stop(t *testing.T) {
	t.Helper()
	if f.stopped {
		return
	}
	f.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	if err := <-f.done; !errors.Is(err, milter.ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
}

// pluginFile builds a Go test guest and writes it where a config can name it.
func pluginFile(t *testing.T, pkg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(pkg)+".wasm")
	if err := os.WriteFile(path, wasmtest.BuildGo(t, pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// postfixWith starts a sink and a Postfix that filters through f and relays to the sink.
func postfixWith(t *testing.T, f *filter) (*mtatest.Postfix, *mtatest.Sink) {
	t.Helper()
	mtatest.Require(t, "postfix", "swaks")
	sink := mtatest.StartSink(t)
	pf := mtatest.StartPostfix(t, mtatest.PostfixConfig{Milter: f.postfixSpec(), RelayTo: sink.Addr})
	return pf, sink
}

// message renders a test message with a unique Message-ID.
func message(t *testing.T, extraHeaders ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: %s\r\n", t.Name())
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%d.%s@example.org>\r\n", time.Now().Format(time.RFC1123Z),
		time.Now().UnixNano(), strings.ReplaceAll(t.Name(), "/", "."))
	for _, h := range extraHeaders {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\nHello from the end-to-end tests.\r\n")
	return b.String()
}

func mail(t *testing.T, extraHeaders ...string) mtatest.Mail {
	return mtatest.Mail{From: "alice@example.org", To: []string{"bob@example.net"}, Data: message(t, extraHeaders...)}
}

// headerOf parses the header of a received message.
func headerOf(t *testing.T, data []byte) *textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufioReader(data))
	if err != nil {
		t.Fatalf("received message has no parsable header: %v\n%s", err, data)
	}
	return &h
}

// testLogger collects the server's log and prints it when the test fails.
// It never calls t.Log from server goroutines, which may outlive the test.
func testLogger(t *testing.T) *slog.Logger {
	buf := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("wasmilter log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }
