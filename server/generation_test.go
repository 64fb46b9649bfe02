package server

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// TestRetiredGenerationIsReleased: a generation replaced by a reload is
// released once its last session ends (at once when it has none), and its
// plugins refuse further calls; the current one keeps working.
func TestRetiredGenerationIsReleased(t *testing.T) {
	s, cfg := buildDefaultServer(t)
	first := s.currentGeneration()
	held := s.enterCurrent() // a session open across the reload
	if _, err := s.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	second := s.currentGeneration()
	if second == first {
		t.Fatal("reload did not make a new generation")
	}
	if failed(first.chain) {
		t.Fatal("the old generation was released while a session still held it")
	}
	held.leave()
	waitUntil(t, func() bool { return failed(first.chain) }, "the old generation's plugins to close after its last session")

	if _, err := s.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return failed(second.chain) }, "a generation without sessions to close at once")
	if failed(s.currentGeneration().chain) {
		t.Fatal("the current generation does not work")
	}
	s.genMu.Lock()
	kept := len(s.generations)
	s.genMu.Unlock()
	if kept > 2 {
		t.Errorf("%d generations kept after two reloads, want the released ones dropped", kept)
	}
}

// buildDefaultServer builds a server on the default plugins, with no
// ledger or admin API, and the config to reload it with.
func buildDefaultServer(t *testing.T) (*Server, *config.Config) {
	t.Helper()
	cfg, err := config.Parse([]byte("[runtime]\ncompilation_cache = \""+wasmtest.CompilationCacheDir(t)+"\"\n[retry]\nstore = \"\"\n[admin]\nlisten = \"\"\n"), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Release)
	return s, cfg
}

// failed reports whether a call to the chain's stamp plugin fails.
func failed(c *plugins.Chain) bool {
	res := c.Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	return len(res.Failures) > 0
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestEveryLoadFailureIsReported: the plugins and the delay policy load
// concurrently, and every one that fails is reported at its own config key
// and line, the plugins in config order, the good plugin closed.
func TestEveryLoadFailureIsReported(t *testing.T) {
	data := "[runtime]\ncompilation_cache = \"" + wasmtest.CompilationCacheDir(t) + "\"\n[admin]\nlisten = \"\"\n" +
		"[notify.policy]\npath = \"builtin:nosuchpolicy\"\n" +
		"[[plugins]]\nname = \"good\"\npath = \"builtin:stamp\"\n" +
		"[[plugins]]\nname = \"missing\"\npath = \"missing.wasm\"\n" +
		"[[plugins]]\nname = \"nobuiltin\"\npath = \"builtin:nosuch\"\n"
	cfg, err := config.Parse([]byte(data), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // the default bbolt ledger lands here
	_, err = Build(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	errs, ok := err.(config.Errors)
	if !ok {
		t.Fatalf("Build: %v (%T), want config.Errors", err, err)
	}
	want := []struct {
		key  string
		line int
	}{{"plugins[1].path", 12}, {"plugins[2].path", 15}, {"notify.policy.path", 6}}
	if len(errs) != len(want) {
		t.Fatalf("Build reported %d errors, want %d: %v", len(errs), len(want), err)
	}
	for i, w := range want {
		if errs[i].Key != w.key || errs[i].Line != w.line {
			t.Errorf("error %d at %s line %d, want %s line %d: %v", i, errs[i].Key, errs[i].Line, w.key, w.line, errs[i])
		}
	}
}

// TestReloadKeepsCounters: what a generation counted stays in the metrics
// after the reload that drops it, so a counter never goes back (which
// Prometheus would read as a reset). Calls to a released generation's
// plugin fail as "unavailable" and are counted; after two more reloads,
// which drop that generation, the count is still there.
func TestReloadKeepsCounters(t *testing.T) {
	s, cfg := buildDefaultServer(t)
	first := s.currentGeneration()
	if _, err := s.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return failed(first.chain) }, "the old generation's plugins to close")
	unavailable := func() uint64 {
		for _, p := range s.pluginStats() {
			if p.Name == "stamp" {
				return p.Failures[plugins.FailureUnavailable.String()]
			}
		}
		t.Fatal("no stamp plugin in the metrics")
		return 0
	}
	before := unavailable()
	if before == 0 {
		t.Fatal("the failed call to the released generation was not counted")
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	s.genMu.Lock()
	dropped := !slices.Contains(s.generations, first)
	s.genMu.Unlock()
	if !dropped {
		t.Fatal("the released generation was not dropped; the test proves nothing")
	}
	if after := unavailable(); after < before {
		t.Errorf("unavailable failures went from %d to %d across the reload that dropped their generation", before, after)
	}
}
