package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// TestJanitorPurgesFinishedRecords: passed records older than keep_passed
// go; deferred ones and recent passed ones stay.
func TestJanitorPurgesFinishedRecords(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, err := retry.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), retry.BoltOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	record := func(name string, pass bool) stamp.Identity {
		id := stamp.Derive(stamp.Facts{Sender: name + "@example.org"})
		if _, err := l.Defer(ctx, retry.Deferral{ID: id, Attempt: retry.Attempt{At: now, Reason: retry.Reason{Code: 451}}}); err != nil {
			t.Fatal(err)
		}
		if pass {
			if _, err := l.Pass(ctx, id, retry.Attempt{At: now}); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	old, stillDeferred := record("old", true), record("deferred", false)
	now = now.Add(8 * 24 * time.Hour) // past keep_passed (7d)
	recent := record("recent", true)

	cfg, err := config.Parse([]byte("[runtime]\ncompilation_cache = \""+wasmtest.CompilationCacheDir(t)+"\"\n[admin]\nlisten = \"\"\n"), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(ctx, cfg, Options{Ledger: l, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	s.purgeFinished(ctx)
	if _, err := l.Get(ctx, old); err == nil {
		t.Error("a passed record older than keep_passed survived")
	}
	for _, id := range []stamp.Identity{stillDeferred, recent} {
		if _, err := l.Get(ctx, id); err != nil {
			t.Errorf("record %s was purged: %v", id, err)
		}
	}
}

// TestReleaseWithoutServe: a server built but never served (check) releases
// cleanly, and a janitor never starts after it.
func TestReleaseWithoutServe(t *testing.T) {
	cfg, err := config.Parse([]byte("[runtime]\ncompilation_cache = \""+wasmtest.CompilationCacheDir(t)+"\"\n[retry]\nstore = \"\"\n"), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	s.startJanitor() // must be a no-op now
}
