package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/server"
)

// BenchmarkBuild measures server.Build with the comparison's config (stamp,
// greylist, the delay policy, cache, bbolt ledger) and a warm compilation
// cache: the start-up time of `wasmilter serve` before it listens, the
// issue's "start with a warm compilation cache ≤ 200 ms".
//
//	go test -run XXX -bench Build -benchtime 10x ./cmd/wasmilter-bench
func BenchmarkBuild(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greylist.wasm"), wasmtest.BuildGo(b, "./examples/greylist"), 0o644); err != nil {
		b.Fatal(err)
	}
	data := fmt.Sprintf(benchConfig, filepath.Join(dir, "m.sock"), wasmtest.CompilationCacheDir(b))
	cfg, err := config.Parse([]byte(data), "bench.toml", dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Chdir(dir)
	ctx := context.Background()
	opts := server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	warm, err := server.Build(ctx, cfg, opts) // fills the compilation cache
	if err != nil {
		b.Fatal(err)
	}
	warm.Release()
	b.ResetTimer()
	for b.Loop() {
		srv, err := server.Build(ctx, cfg, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		srv.Release()
		b.StartTimer()
	}
}
