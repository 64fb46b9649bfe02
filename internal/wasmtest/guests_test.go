package wasmtest_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// These tests run the test guests through the real plugin host, so the lead's
// end-to-end tests can rely on each guest doing what its README line says.

func newHost(t *testing.T, logs *bytes.Buffer) *plugins.Host {
	t.Helper()
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	return host
}

func load(t *testing.T, host *plugins.Host, spec plugins.Spec) *plugins.Chain {
	t.Helper()
	p, err := host.Load(context.Background(), spec)
	if err != nil {
		t.Fatalf("Load %s: %v", spec.Name, err)
	}
	return plugins.NewChain(p)
}

func headersEvent(headers ...abi.Header) *abi.Event {
	return &abi.Event{From: "a@example.org", Rcpts: []abi.Recipient{{Addr: "b@example.org"}}, Headers: headers}
}

func TestTempfailGuest(t *testing.T) {
	var logs bytes.Buffer
	host := newHost(t, &logs)
	wasm := wasmtest.BuildGo(t, "./testdata/plugins/tempfail")
	ctx := context.Background()

	chain := load(t, host, plugins.Spec{Name: "tempfail", Wasm: wasm})
	res := chain.Run(ctx, abi.HookHeaders, headersEvent(abi.Header{Name: "Subject", Value: "x"}), wasmtest.Env{})
	if res.Verdict != abi.Continue || len(res.Failures) > 0 {
		t.Errorf("without the trigger header: %v %v", res.Verdict, res.Failures)
	}
	res = chain.Run(ctx, abi.HookHeaders, headersEvent(abi.Header{Name: "x-test-tempfail", Value: ""}), wasmtest.Env{})
	want := abi.Reply{Code: 451, Enhanced: "4.7.1", Text: "Try again later"}
	if res.Verdict != abi.TempFail || res.Reply != want {
		t.Errorf("defaults: got %v %+v, want tempfail %+v (failures %v)", res.Verdict, res.Reply, want, res.Failures)
	}

	chain = load(t, host, plugins.Spec{Name: "tempfail-configured", Wasm: wasm, Config: []abi.ConfigEntry{
		{Key: "code", Values: []string{"421"}}, {Key: "enhanced", Values: []string{"4.3.2"}}, {Key: "text", Values: []string{"busy"}},
	}})
	res = chain.Run(ctx, abi.HookHeaders, headersEvent(abi.Header{Name: "X-Test-Tempfail", Value: "1"}), wasmtest.Env{})
	want = abi.Reply{Code: 421, Enhanced: "4.3.2", Text: "busy"}
	if res.Verdict != abi.TempFail || res.Reply != want {
		t.Errorf("configured: got %v %+v, want tempfail %+v (failures %v)", res.Verdict, res.Reply, want, res.Failures)
	}
}

func TestLoopGuestIsStoppedByTheDeadline(t *testing.T) {
	var logs bytes.Buffer
	host := newHost(t, &logs)
	chain := load(t, host, plugins.Spec{Name: "loop", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/loop"),
		Timeout: 50 * time.Millisecond, OnError: plugins.OnErrorAccept})
	res := chain.Run(context.Background(), abi.HookHeaders, headersEvent(abi.Header{Name: "X-Test-Loop", Value: "1"}), wasmtest.Env{})
	if len(res.Failures) != 1 || res.Failures[0].Kind != plugins.FailureTimeout {
		t.Fatalf("failures = %v, want one timeout", res.Failures)
	}
	if res.Verdict != abi.Accept {
		t.Errorf("verdict = %v, want the on_error policy accept", res.Verdict)
	}
	// A message that does not ask for the loop is served by a fresh instance.
	res = chain.Run(context.Background(), abi.HookHeaders, headersEvent(), wasmtest.Env{})
	if len(res.Failures) != 0 || res.Verdict != abi.Continue {
		t.Fatalf("after the timeout: verdict %v, failures %v; want continue and none", res.Verdict, res.Failures)
	}
}

func TestPanicGuestFailsTheCallAndLogs(t *testing.T) {
	var logs bytes.Buffer
	host := newHost(t, &logs)
	chain := load(t, host, plugins.Spec{Name: "panic", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/panic")})
	res := chain.Run(context.Background(), abi.HookHeaders, headersEvent(), wasmtest.Env{})
	if len(res.Failures) != 1 {
		t.Fatalf("failures = %v, want one", res.Failures)
	}
	if res.Verdict != abi.TempFail {
		t.Errorf("verdict = %v, want the default on_error policy tempfail", res.Verdict)
	}
	if !strings.Contains(logs.String(), "plugin panicked in headers: test guest panics on purpose") {
		t.Errorf("the panic was not logged through the host:\n%s", logs.String())
	}
}

func TestBadABIGuestIsRefused(t *testing.T) {
	var logs bytes.Buffer
	host := newHost(t, &logs)
	_, err := host.Load(context.Background(), plugins.Spec{Name: "badabi", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/badabi")})
	if err == nil || !strings.Contains(err.Error(), "999") {
		t.Fatalf("Load = %v, want an error naming ABI version 999", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("refused for the wrong reason: %v", err)
	}
}

// TestSandboxDeniesFilesAndEnvironment: a plugin sees no filesystem, no
// environment variables and no arguments, whatever the server has.
func TestSandboxDeniesFilesAndEnvironment(t *testing.T) {
	t.Setenv("WASMILTER_SECRET_FOR_SANDBOX_TEST", "must-not-leak")
	var logs bytes.Buffer
	host := newHost(t, &logs)
	chain := load(t, host, plugins.Spec{Name: "snoop", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/snoop")})
	res := chain.Run(context.Background(), abi.HookHeaders, headersEvent(), wasmtest.Env{})
	if len(res.Failures) != 0 || len(res.Actions) != 1 {
		t.Fatalf("snoop: failures %v, actions %+v", res.Failures, res.Actions)
	}
	report := res.Actions[0].Value
	for _, want := range []string{"read:/etc/passwd=denied", "read:/etc/hostname=denied", "read:/proc/self/environ=denied",
		"read:.=denied", "readdir:/=denied", "create:/tmp=denied", "env=0:", "args=0"} {
		if !strings.Contains(report, want) {
			t.Errorf("sandbox report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "GOT(") || strings.Contains(report, "must-not-leak") {
		t.Errorf("the plugin reached outside its sandbox:\n%s", report)
	}
	if _, err := os.Stat("/tmp/snoop-was-here"); err == nil {
		t.Error("the plugin created a file on the host")
	}
}

// mapKV is a minimal plugins.KVStore for testing the host functions'
// plumbing; the real store is the property cache.
type mapKV struct {
	mu   sync.Mutex
	vals map[string][]byte
	ctrs map[string]int64
}

func (m *mapKV) KVGet(ns, key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vals[ns+"/"+key]
	return v, ok
}

func (m *mapKV) KVSet(ns, key string, value []byte, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals[ns+"/"+key] = value
	return nil
}

func (m *mapKV) KVIncr(ns, key string, delta int64, _ time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctrs[ns+"/"+key] += delta
	return m.ctrs[ns+"/"+key], nil
}

// TestRecordPropertiesAndKVReachTheGuest: the record, properties and kv_*
// host functions, from the Go SDK through the real host.
func TestRecordPropertiesAndKVReachTheGuest(t *testing.T) {
	kv := &mapKV{vals: map[string][]byte{}, ctrs: map[string]int64{}}
	host, err := plugins.NewHost(context.Background(), plugins.HostConfig{KV: kv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	chain := load(t, host, plugins.Spec{Name: "hostecho", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/hostecho")})

	env := wasmtest.Env{
		MsgRecord: &abi.Record{ID: "idx", State: "deferred", Attempts: 2, FirstSeen: 1800000000, LastReason: abi.Reply{Code: 451}},
		MsgProps:  &abi.Properties{Subject: "Grüße", ReceivedCount: 3, IsDeliveryReport: true},
	}
	ev := &abi.Event{QueueID: "Q1"}
	got := actionValues(t, chain.Run(context.Background(), abi.HookMessage, ev, env))
	want := map[string]string{"X-Record": "idx deferred 2 1800000000 451", "X-Props": "Grüße|3|true",
		"X-Counter": "1 <nil>", "X-KV": "Q1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	got = actionValues(t, chain.Run(context.Background(), abi.HookMessage, &abi.Event{QueueID: "Q2"}, wasmtest.Env{}))
	if got["X-Record"] != "absent" || got["X-Props"] != "absent" || got["X-Counter"] != "2 <nil>" || got["X-KV"] != "Q2" {
		t.Errorf("second message: %v", got)
	}
	if string(kv.vals["hostecho/last-queue-id"]) != "Q2" {
		t.Errorf("the store is not namespaced by plugin name: %v", kv.vals)
	}
}

func actionValues(t *testing.T, res plugins.Result) map[string]string {
	t.Helper()
	if len(res.Failures) != 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	out := map[string]string{}
	for _, a := range res.Actions {
		out[a.Name] = a.Value
	}
	return out
}
