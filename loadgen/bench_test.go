package loadgen

import (
	"context"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/milter"
)

// benchLoad runs b.N messages of the built-in newsletter at 8 connections
// over a unix socket. Both the load generator and the server run in this
// process, so ns/op is the cost of both; msgs/s is what to compare.
func benchLoad(b *testing.B, spec string) {
	b.Helper()
	cfg := Config{Milter: spec, Concurrency: 8, Messages: b.N}
	b.ResetTimer()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.MsgsPerSec, "msgs/s")
	b.ReportMetric(res.Latency.P99, "p99-µs")
}

// BenchmarkLoadOurServerNoPlugins: wasmilter's protocol server with a
// policy that only adds a header, no Wasm.
func BenchmarkLoadOurServerNoPlugins(b *testing.B) {
	be := newBackend()
	be.eom = func() (milter.Reply, []milter.Modification) {
		return milter.Reply{}, []milter.Modification{{Kind: milter.AddHeader, Name: "X-Checked", Value: "yes"}}
	}
	benchLoad(b, startOurs(b, "unix", be))
}

// BenchmarkLoadGoMilterNoOp: go-milter v0.5.0's server with its NoOpMilter.
func BenchmarkLoadGoMilterNoOp(b *testing.B) {
	benchLoad(b, startGoMilter(b, "unix", &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}))
}
