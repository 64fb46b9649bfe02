package main

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// loadHello builds this example and loads it through the plugin host the way
// the server does, with the given [plugins.config] table.
func loadHello(t *testing.T, logs *bytes.Buffer, config ...abi.ConfigEntry) (*plugins.Chain, error) {
	t.Helper()
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	p, err := host.Load(ctx, plugins.Spec{
		Name:    "hello",
		Source:  "examples/hello",
		Wasm:    wasmtest.BuildGo(t, "./examples/hello"),
		OnError: plugins.OnErrorAccept,
		Config:  config,
	})
	if err != nil {
		return nil, err
	}
	return plugins.NewChain(p), nil
}

func messageEvent(subject string) *abi.Event {
	return &abi.Event{
		QueueID: "4ABC",
		From:    "alice@example.org",
		Rcpts:   []abi.Recipient{{Addr: "bob@example.net"}},
		Headers: []abi.Header{{Name: "From", Value: "alice@example.org"}, {Name: "Subject", Value: subject}},
	}
}

func TestHelloGreetsAndRejects(t *testing.T) {
	var logs bytes.Buffer
	chain, err := loadHello(t, &logs,
		abi.ConfigEntry{Key: "greeting", Values: []string{"Hi there"}},
		abi.ConfigEntry{Key: "reject_word", Values: []string{"Lottery"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := abi.HookSet(0).With(abi.HookMessage); chain.Hooks() != want {
		t.Errorf("chain asks for hooks %v, want only %v", chain.Hooks(), want)
	}
	ctx := context.Background()

	res := chain.Run(ctx, abi.HookMessage, messageEvent("Lunch?"), wasmtest.Env{})
	if len(res.Failures) > 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	wantActions := []abi.Action{{Kind: abi.AddHeader, Name: "X-Hello", Value: "Hi there"}}
	if res.Verdict != abi.Continue || !reflect.DeepEqual(res.Actions, wantActions) {
		t.Errorf("ordinary message: verdict %v, actions %+v; want continue, %+v", res.Verdict, res.Actions, wantActions)
	}

	res = chain.Run(ctx, abi.HookMessage, messageEvent("You won the LOTTERY!"), wasmtest.Env{})
	if len(res.Failures) > 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	if res.Verdict != abi.Reject || res.Reply.Code != 550 || res.Reply.Enhanced != "5.7.1" || len(res.Actions) != 0 {
		t.Errorf("lottery message: got %v %+v actions %+v; want reject 550 5.7.1 and no actions", res.Verdict, res.Reply, res.Actions)
	}
	if !strings.Contains(logs.String(), "rejecting message 4ABC") {
		t.Errorf("the plugin's log line did not reach the host log:\n%s", logs.String())
	}
}

func TestHelloRefusesBadConfig(t *testing.T) {
	var logs bytes.Buffer
	_, err := loadHello(t, &logs, abi.ConfigEntry{Key: "greeting", Values: []string{"  "}})
	if err == nil || !strings.Contains(err.Error(), `"greeting" must not be empty`) {
		t.Errorf("Load with an empty greeting: err = %v", err)
	}
}

// TestHelloExports checks the module has every export of the ABI with its
// signature: the SDK exports all hooks, whichever the plugin handles.
func TestHelloExports(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, wasmtest.BuildGo(t, "./examples/hello"))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := map[string][2][]api.ValueType{
		abi.ExportABIVersion: {nil, {i32}},
		abi.ExportBuffer:     {{i32}, {i32}},
		abi.ExportInit:       {{i32}, {i64}},
		abi.ExportInitialize: {nil, nil},
	}
	for _, h := range abi.Hooks() {
		want[h.Export()] = [2][]api.ValueType{{i32}, {i64}}
	}
	got := compiled.ExportedFunctions()
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
}
