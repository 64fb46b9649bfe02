package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/loadgen"
	"github.com/wasmilter/wasmilter/server"
)

// benchConfig is the configuration issue 9 measures, as bench/compare.sh
// writes it: stamp and greylist (allowing the load generator's clients, so
// every message passes and the greylist hook still runs), the delay
// notification policy, the header cache and the bbolt ledger.
const benchConfig = `
[milter]
listen = "unix:%s"

[admin]
listen = ""

[log]
level = "warn"

[runtime]
compilation_cache = %q

[notify]
smtp = "127.0.0.1:9"

[[plugins]]
name = "stamp"
path = "builtin:stamp"

[[plugins]]
name = "greylist"
path = "greylist.wasm"
on_error = "continue"

[plugins.config]
allow.networks = ["127.0.0.0/8", "198.51.100.0/24"]
`

// BenchmarkServe runs b.N messages of the built-in newsletter through the
// whole server (milter core, pipeline, cache, ledger, two Go plugins) at 8
// connections over a unix socket. The load generator runs in this process
// too, so ns/op is both; it is here to be profiled:
//
//	go test -run XXX -bench Serve -benchtime 4000x -cpuprofile cpu.out ./cmd/wasmilter-bench
//	go tool pprof -top -focus 'wasmilter/(milter|pipeline|plugins|server|cache|retry)' cpu.out
func BenchmarkServe(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greylist.wasm"), wasmtest.BuildGo(b, "./examples/greylist"), 0o644); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "m.sock")
	data := fmt.Sprintf(benchConfig, sock, wasmtest.CompilationCacheDir(b))
	cfg, err := config.Parse([]byte(data), "bench.toml", dir)
	if err != nil {
		b.Fatal(err)
	}
	// The ledger's relative path resolves against the working directory.
	b.Chdir(dir)
	ctx := context.Background()
	srv, err := server.Build(ctx, cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})

	b.ResetTimer()
	res, err := loadgen.Run(ctx, loadgen.Config{Milter: "unix:" + sock, Concurrency: 8, Messages: b.N})
	if err != nil {
		b.Fatal(err)
	}
	if res.Actions[loadgen.ActionContinue] != int64(b.N) {
		b.Fatalf("actions %v, want %d continue", res.Actions, b.N)
	}
	b.ReportMetric(res.MsgsPerSec, "msgs/s")
	b.ReportMetric(res.Latency.P99, "p99-µs")
}
