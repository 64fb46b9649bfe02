package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
)

// TestServeReloads: the real binary reloads its config on SIGHUP and on
// `wasmilter reload`; a config that does not build is refused with its
// error while the running one keeps serving.
func TestServeReloads(t *testing.T) {
	bin := wasmilterBinary(t)
	dir := t.TempDir()
	hello := writeFile(t, dir, "hello.wasm", string(wasmtest.BuildGo(t, "./examples/hello")))
	sock := filepath.Join(dir, "milter.sock")
	adminAddr := freeLoopbackAddr(t)
	config := func(greeting, plugin string) string {
		return writeFile(t, dir, "w.toml", fmt.Sprintf(`[milter]
listen = "unix:%s"
[runtime]
compilation_cache = %q
[retry]
store = "bolt:ledger.db"
[admin]
listen = %q
[[plugins]]
name = "hello"
path = %q
[plugins.config]
greeting = %q
`, sock, wasmtest.CompilationCacheDir(t), adminAddr, plugin, greeting))
	}
	cfg := config("one", hello)
	p := startServeProcess(t, bin, cfg, sock)
	hi := func() string { t.Helper(); return helloOf(t, sock) }
	if got := hi(); got != "one" {
		t.Fatalf("greeting %q, want one", got)
	}

	config("two", hello)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(p.logs.String(), "configuration reloaded") },
		"the reload after SIGHUP")
	if got := hi(); got != "two" {
		t.Fatalf("after SIGHUP: greeting %q, want two\n%s", got, p.logs)
	}

	config("three", filepath.Join(dir, "missing.wasm"))
	var out, errOut bytes.Buffer
	if code := run([]string{"reload", "-config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "missing.wasm") {
		t.Fatalf("reload of a broken config: exit %d, %q %q; want 1 naming the file", code, out.String(), errOut.String())
	}
	if got := hi(); got != "two" {
		t.Fatalf("after a refused reload: greeting %q, want two still", got)
	}

	config("four", hello)
	out.Reset()
	if code := run([]string{"reload", "-config", cfg}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "reloaded") {
		t.Fatalf("wasmilter reload: exit %d, %q %q", code, out.String(), errOut.String())
	}
	if got := hi(); got != "four" {
		t.Fatalf("after wasmilter reload: greeting %q, want four", got)
	}
	select {
	case <-p.done:
		t.Fatalf("serve exited: %v\n%s", p.err, p.logs)
	default:
	}
}

// helloOf sends one message and returns the X-Hello value it was given.
func helloOf(t *testing.T, sock string) string {
	t.Helper()
	c := gomilter.NewClientWithOptions("unix", sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Mail("<alice@example.org>", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rcpt("<bob@example.net>", nil); err != nil {
		t.Fatal(err)
	}
	var h textproto.Header
	h.Add("From", "alice@example.org")
	h.Add("Message-Id", fmt.Sprintf("<%d@example.org>", time.Now().UnixNano()))
	if _, err := s.Header(h); err != nil {
		t.Fatal(err)
	}
	mods, _, err := s.End()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if strings.EqualFold(m.HeaderName, "X-Hello") {
			return m.HeaderValue
		}
	}
	return ""
}
