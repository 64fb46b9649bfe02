package plugins

import (
	"context"
	"testing"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// BenchmarkRun measures one hook call of a chain: encode a 20-header event,
// copy it into the guest, run good.wat's header walk (the deadline guard of
// WithCloseOnContextDone on), read and validate its answer.
func BenchmarkRun(b *testing.B) {
	b.Run("1plugin", func(b *testing.B) { benchmarkChain(b, 1, watFile(b, "good")) })
	b.Run("2plugins", func(b *testing.B) { benchmarkChain(b, 2, watFile(b, "good")) })
	// The host's own share: a guest that answers at once, without reading.
	b.Run("noop", func(b *testing.B) { benchmarkChain(b, 1, fixedWasm(b, abi.Answer{})) })
}

func benchmarkChain(b *testing.B, n int, wasm []byte) {
	h, _ := newTestHost(b)
	var ps []*Plugin
	for i := 0; i < n; i++ {
		ps = append(ps, load(b, h, Spec{Name: "good", Wasm: wasm}))
	}
	chain := NewChain(ps...)
	ev := headerEvent(20)
	ctx := context.Background()
	if res := chain.Run(ctx, abi.HookHeaders, ev, nil); res.Verdict != abi.Continue || len(res.Failures) != 0 {
		b.Fatalf("warm-up: %+v", res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		chain.Run(ctx, abi.HookHeaders, ev, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/hookcall")
}

// BenchmarkRunParallel is the same single-plugin chain from every core.
func BenchmarkRunParallel(b *testing.B) {
	h, _ := newTestHost(b)
	chain := NewChain(load(b, h, Spec{Name: "good", Wasm: watFile(b, "good")}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ev := headerEvent(20)
		for pb.Next() {
			chain.Run(context.Background(), abi.HookHeaders, ev, nil)
		}
	})
}

// BenchmarkEncodeEvent isolates the encoding Run does once per call.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := headerEvent(20)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = abi.AppendEvent(buf[:0], ev)
	}
}

// BenchmarkRunGo measures hook calls of Go plugins through the host, the
// cost a message pays per plugin: the shipped stamp policy at the message
// hook (decode, a host call for the stamp, one header added) and the
// greylist example at the headers hook (decode, an allow-list match). A Go
// guest's cost is dominated by its own runtime (the garbage collector, and
// growing its memory), so the benchmark also reports the instance's memory
// at the end: a guest that keeps growing copies all of it each time.
func BenchmarkRunGo(b *testing.B) {
	stamp, _ := builtin.Lookup("stamp")
	st := &abi.Stamp{ID: "0123456789abcdef0123456789abcdef", FirstSeen: 1715673730, HeaderName: "X-Wasmilter-Stamp",
		HeaderValue: "v=1; id=0123456789abcdef0123456789abcdef; t=1715673730"}
	b.Run("stamp", func(b *testing.B) {
		benchmarkGo(b, Spec{Name: "stamp", Wasm: stamp.Wasm, Env: stamp.Env}, abi.HookMessage, testEnv{stamp: st})
	})
	b.Run("greylist", func(b *testing.B) {
		cfg := []abi.ConfigEntry{{Key: "allow.networks", Values: []string{"192.0.2.0/24"}}}
		spec := Spec{Name: "greylist", Wasm: wasmtest.BuildGo(b, "./examples/greylist"), Config: cfg}
		benchmarkGo(b, spec, abi.HookHeaders, testEnv{})
	})
}

func benchmarkGo(b *testing.B, spec Spec, hook abi.Hook, env Env) {
	h, _ := newTestHost(b)
	p := load(b, h, spec)
	chain := NewChain(p)
	ev := headerEvent(20)
	ctx := context.Background()
	if res := chain.Run(ctx, hook, ev, env); res.Verdict != abi.Continue || len(res.Failures) != 0 {
		b.Fatalf("warm-up: %+v", res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		chain.Run(ctx, hook, ev, env)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/hookcall")
	inst, err := p.get(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(inst.mem.Size())/(1<<20), "guest-MiB")
	p.put(inst)
}
