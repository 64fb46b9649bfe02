package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// guests are the SDKs' nolottery plugins, each built by its own toolchain.
var guests = []struct {
	sdk   string
	build func(*testing.T) []byte
}{
	{"go", buildGo},
	{"c", buildC},
	{"assemblyscript", buildAssemblyScript},
}

// The scenario every guest implements (see doc.go and examples/c).
const (
	rejectText = "We do not take part in lotteries"
	mtaHost    = "mx.example.org"
)

var withMacros = wasmtest.Env{Macros: map[string]string{"j": mtaHost, "i": "4ABC"}}

// TestConformance runs the whole scenario against each SDK's guest.
func TestConformance(t *testing.T) {
	for _, sdk := range guests {
		t.Run(sdk.sdk, func(t *testing.T) {
			t.Parallel() // overlap the toolchains' builds
			// One compilation cache per guest, on disk: loads after the first
			// are then cheap, as the server's restarts are.
			g := guest{wasm: timedBuild(t, sdk.build), cacheDir: t.TempDir()}
			t.Run("exports and imports", func(t *testing.T) { checkExportsAndImports(t, g) })
			t.Run("abi version", func(t *testing.T) { checkABIVersion(t, g) })
			t.Run("config", func(t *testing.T) { checkConfig(t, g) })
			t.Run("headers hook", func(t *testing.T) { checkHeadersHook(t, g) })
			t.Run("large event", func(t *testing.T) { checkLargeEvent(t, g) })
			t.Run("many calls", func(t *testing.T) { checkManyCalls(t, g) })
		})
	}
}

// guest is a built plugin and the compilation cache its loads share.
type guest struct {
	wasm     []byte
	cacheDir string
}

// runtime returns a bare wazero runtime sharing the guest's compilation
// cache, for the checks that look at the module without the host.
func (g guest) runtime(t *testing.T) wazero.Runtime {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(g.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	t.Cleanup(func() {
		rt.Close(ctx)
		cache.Close(ctx)
	})
	return rt
}

// load loads wasm through the plugin host as the server does.
func load(t *testing.T, g guest, logs *syncbuf.Buffer, config ...abi.ConfigEntry) (*plugins.Chain, error) {
	t.Helper()
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{
		CompilationCacheDir: g.cacheDir,
		Logger:              slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	p, err := host.Load(ctx, plugins.Spec{
		Name:    "nolottery",
		Source:  "conformance",
		Wasm:    g.wasm,
		OnError: plugins.OnErrorTempFail,
		// Conformance, not speed: a shared, busy CI machine must not
		// turn a slow call into a failure.
		Timeout: 10 * time.Second,
		Config:  config,
	})
	if err != nil {
		return nil, err
	}
	return plugins.NewChain(p), nil
}

func mustLoad(t *testing.T, g guest, logs *syncbuf.Buffer, config ...abi.ConfigEntry) *plugins.Chain {
	t.Helper()
	start := time.Now()
	chain, err := load(t, g, logs, config...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Logf("loaded (compile, instantiate, init) in %v", time.Since(start).Round(time.Microsecond))
	return chain
}

func word(w ...string) abi.ConfigEntry { return abi.ConfigEntry{Key: "word", Values: w} }

func event(headers ...abi.Header) *abi.Event {
	return &abi.Event{
		ClientHost: "client.example.net",
		ClientAddr: "192.0.2.1",
		ClientPort: 25025,
		Family:     "inet",
		Helo:       "client.example.net",
		QueueID:    "4ABC",
		From:       "alice@example.org",
		FromArgs:   []string{"SIZE=1000", "BODY=8BITMIME"},
		Rcpts:      []abi.Recipient{{Addr: "bob@example.net", Args: []string{"NOTIFY=NEVER"}}, {Addr: "carol@example.net"}},
		Headers:    append([]abi.Header{{Name: "From", Value: "Alice <alice@example.org>"}}, headers...),
	}
}

func subject(s string) abi.Header { return abi.Header{Name: "Subject", Value: s} }

// runHeaders calls the headers hook and fails on any plugin failure.
func runHeaders(t *testing.T, chain *plugins.Chain, ev *abi.Event, env wasmtest.Env) plugins.Result {
	t.Helper()
	res := chain.Run(context.Background(), abi.HookHeaders, ev, env)
	if len(res.Failures) > 0 {
		t.Fatalf("plugin failed: %v", res.Failures)
	}
	return res
}

func wantReject(t *testing.T, res plugins.Result) {
	t.Helper()
	want := abi.Reply{Code: 550, Enhanced: "5.7.1", Text: rejectText}
	if res.Verdict != abi.Reject || res.Reply != want || len(res.Actions) != 0 {
		t.Errorf("got %v %+v, actions %+v; want reject %+v and no actions", res.Verdict, res.Reply, res.Actions, want)
	}
}

func wantChecked(t *testing.T, res plugins.Result, value string) {
	t.Helper()
	want := []abi.Action{{Kind: abi.AddHeader, Name: "X-Checked-By", Value: value}}
	if res.Verdict != abi.Continue || !res.Reply.IsZero() || !reflect.DeepEqual(res.Actions, want) {
		t.Errorf("got %v %+v, actions %+v; want continue with %+v", res.Verdict, res.Reply, res.Actions, want)
	}
}

// checkExportsAndImports holds the module to sdk/ABI.md §1: the required
// exports with their signatures, every hook export's signature, and
// imports from the two allowed modules only.
func checkExportsAndImports(t *testing.T, g guest) {
	ctx := context.Background()
	rt := g.runtime(t)
	compiled, err := rt.CompileModule(ctx, g.wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := map[string][2][]api.ValueType{
		abi.ExportABIVersion:     {nil, {i32}},
		abi.ExportBuffer:         {{i32}, {i32}},
		abi.ExportInit:           {{i32}, {i64}},
		abi.HookHeaders.Export(): {{i32}, {i64}},
	}
	got := compiled.ExportedFunctions()
	for _, h := range abi.Hooks() {
		if _, ok := got[h.Export()]; ok {
			want[h.Export()] = [2][]api.ValueType{{i32}, {i64}}
		}
	}
	for name, sig := range want {
		fn, ok := got[name]
		if !ok {
			t.Errorf("export %s is missing", name)
			continue
		}
		if !reflect.DeepEqual(fn.ParamTypes(), sig[0]) || !reflect.DeepEqual(fn.ResultTypes(), sig[1]) {
			t.Errorf("export %s: (%v) -> %v, want (%v) -> %v", name, fn.ParamTypes(), fn.ResultTypes(), sig[0], sig[1])
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		t.Error(`memory export "memory" is missing`)
	}
	for _, fn := range compiled.ImportedFunctions() {
		mod, name, _ := fn.Import()
		if mod != abi.HostModule && mod != wasi_snapshot_preview1.ModuleName {
			t.Errorf("imports %s.%s: only %q and %q are provided", mod, name, abi.HostModule, wasi_snapshot_preview1.ModuleName)
		}
	}
}

// checkABIVersion instantiates the guest against stub host functions of
// the ABI's exact signatures (a guest importing another signature fails
// here), runs the reactor constructor and asks for the version.
func checkABIVersion(t *testing.T, g guest) {
	ctx := context.Background()
	rt := g.runtime(t)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := stubHostModule(rt).Instantiate(ctx); err != nil {
		t.Fatalf("stub host module: %v", err)
	}
	cfg := wazero.NewModuleConfig().WithStartFunctions() // _initialize is called below, as the host does
	mod, err := rt.InstantiateWithConfig(ctx, g.wasm, cfg)
	if err != nil {
		t.Fatalf("instantiate against the ABI's host functions: %v", err)
	}
	if init := mod.ExportedFunction(abi.ExportInitialize); init != nil {
		if _, err := init.Call(ctx); err != nil {
			t.Fatalf("%s: %v", abi.ExportInitialize, err)
		}
	}
	res, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ctx)
	if err != nil {
		t.Fatalf("%s: %v", abi.ExportABIVersion, err)
	}
	if got := int32(res[0]); got != abi.Version {
		t.Errorf("%s() = %d, want %d", abi.ExportABIVersion, got, abi.Version)
	}
}

// stubHostModule declares every host function of sdk/ABI.md §6 with its
// signature; they answer "absent" or "refused".
func stubHostModule(rt wazero.Runtime) wazero.HostModuleBuilder {
	absent := func(...uint32) int32 { return abi.ResultAbsent }
	b := rt.NewHostModuleBuilder(abi.HostModule)
	b.NewFunctionBuilder().WithFunc(func(level, ptr, n uint32) {}).Export(abi.HostLog)
	b.NewFunctionBuilder().WithFunc(func() int64 { return 0 }).Export(abi.HostNow)
	b.NewFunctionBuilder().WithFunc(func(a, b, c, d uint32) int32 { return absent(a, b, c, d) }).Export(abi.HostMacro)
	for _, name := range []string{abi.HostStamp, abi.HostRecord, abi.HostProperties} {
		b.NewFunctionBuilder().WithFunc(func(a, b uint32) int32 { return absent(a, b) }).Export(name)
	}
	b.NewFunctionBuilder().WithFunc(func(a, b, c, d uint32) int32 { return absent(a, b, c, d) }).Export(abi.HostKVGet)
	b.NewFunctionBuilder().WithFunc(func(a, b, c, d uint32, ttl int64) int32 { return abi.ResultRefused }).Export(abi.HostKVSet)
	b.NewFunctionBuilder().WithFunc(func(a, b uint32, delta, ttl int64, out uint32) int32 { return abi.ResultRefused }).Export(abi.HostKVIncr)
	return b
}

// checkConfig: the hooks reported, the plugin's own refusal text, the
// SDK's report of a malformed value, and the warning about an unused key.
func checkConfig(t *testing.T, g guest) {
	var logs syncbuf.Buffer
	chain := mustLoad(t, g, &logs)
	if want := abi.HookSet(0).With(abi.HookHeaders); chain.Hooks() != want {
		t.Errorf("hooks reported: %v, want only %v", chain.Hooks(), want)
	}
	wantReject(t, runHeaders(t, chain, event(subject("Win the lottery")), withMacros)) // the default word

	refusals := []struct {
		config abi.ConfigEntry
		want   string
	}{
		{word(""), `config key "word" must not be empty`},
		{word("a", "b"), `config key "word": want a single value, got a list of 2`},
	}
	for _, r := range refusals {
		_, err := load(t, g, &logs, r.config)
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("Load with word = %q: err = %v, want it to contain %q", r.config.Values, err, r.want)
		}
	}

	var typoLogs syncbuf.Buffer
	mustLoad(t, g, &typoLogs, word("prize"), abi.ConfigEntry{Key: "wrod", Values: []string{"x"}})
	if s := typoLogs.String(); !strings.Contains(s, "typo") || !strings.Contains(s, "wrod") {
		t.Errorf("an unused config key was not logged as a likely typo:\n%s", s)
	}
}

// checkHeadersHook: a header read (in any case of its name) leading to a
// reject with the exact reply and a log line; an add_header action whose
// value comes from a macro, and without the macro.
func checkHeadersHook(t *testing.T, g guest) {
	var logs syncbuf.Buffer
	chain := mustLoad(t, g, &logs, word("Lottery"))

	wantReject(t, runHeaders(t, chain, event(subject("You won the LOTTERY!")), withMacros))
	if !strings.Contains(logs.String(), "rejecting message 4ABC") {
		t.Errorf("the plugin's log line did not reach the host log:\n%s", logs.String())
	}
	wantReject(t, runHeaders(t, chain, event(abi.Header{Name: "SUBJECT", Value: "lottery"}), withMacros))

	wantChecked(t, runHeaders(t, chain, event(subject("Lunch?")), withMacros), "nolottery at "+mtaHost)
	wantChecked(t, runHeaders(t, chain, event(subject("Lunch?")), wasmtest.Env{}), "nolottery")
	wantChecked(t, runHeaders(t, chain, event(), withMacros), "nolottery at "+mtaHost) // no Subject at all
}

// checkLargeEvent sends an event far larger than any first exchange buffer,
// with the deciding header last: the guest must grow its buffer and decode
// every field.
func checkLargeEvent(t *testing.T, g guest) {
	var logs syncbuf.Buffer
	chain := mustLoad(t, g, &logs)
	headers := make([]abi.Header, 0, 301)
	for i := range 300 {
		headers = append(headers, abi.Header{Name: fmt.Sprintf("X-Filler-%d", i), Value: strings.Repeat("f", 200)})
	}
	wantReject(t, runHeaders(t, chain, event(append(headers, subject("lottery"))...), withMacros))
	wantChecked(t, runHeaders(t, chain, event(subject("small again")), withMacros), "nolottery at "+mtaHost)
}

// checkManyCalls alternates answers on one instance many times: per-call
// state (arenas, answer buffers, header views) must be reset every call.
func checkManyCalls(t *testing.T, g guest) {
	var logs syncbuf.Buffer
	chain := mustLoad(t, g, &logs)
	start := time.Now()
	const calls = 500
	for i := range calls {
		if i%2 == 0 {
			wantReject(t, runHeaders(t, chain, event(subject(fmt.Sprintf("lottery %d", i))), withMacros))
		} else {
			wantChecked(t, runHeaders(t, chain, event(subject(fmt.Sprintf("hello %d", i))), withMacros), "nolottery at "+mtaHost)
		}
		if t.Failed() {
			t.Fatalf("call %d", i)
		}
	}
	t.Logf("%d headers-hook calls, %v each", calls, (time.Since(start) / calls).Round(100*time.Nanosecond))
}
