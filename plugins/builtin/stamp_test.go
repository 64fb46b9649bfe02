package builtin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// These tests load the committed builtins.wasm as stamp, the bytes the server embeds,
// through the real plugin host.

const stampHeader = "X-Wasmilter-Stamp"

// host is shared by every test of the package so each builtin module is
// compiled once (the host's compilation cache) rather than per test.
var host struct {
	once sync.Once
	h    *plugins.Host
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if host.h != nil {
		host.h.Close(context.Background())
	}
	os.Exit(code)
}

func sharedHost(tb testing.TB) *plugins.Host {
	tb.Helper()
	host.once.Do(func() {
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		// A fixed clock: the delaynotify tests compute every age from it.
		clock := func() time.Time { return testNow }
		host.h, host.err = plugins.NewHost(context.Background(), plugins.HostConfig{Logger: logger, Clock: clock,
			CompilationCacheDir: wasmtest.CompilationCacheDir(tb)})
	})
	if host.err != nil {
		tb.Fatalf("NewHost: %v", host.err)
	}
	return host.h
}

// loadBuiltin loads an embedded builtin through the shared host with the
// given config, as the server does for path = "builtin:NAME".
func loadBuiltin(tb testing.TB, name string, config ...abi.ConfigEntry) (*plugins.Chain, error) {
	tb.Helper()
	mod, ok := builtin.Lookup(name)
	if !ok {
		tb.Fatalf("no %s builtin", name)
	}
	ctx := context.Background()
	p, err := sharedHost(tb).Load(ctx, plugins.Spec{Name: name, Source: "builtin:" + name, Wasm: mod.Wasm, Env: mod.Env, Config: config})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { p.Close(ctx) })
	return plugins.NewChain(p), nil
}

// loadStamp loads the embedded stamp plugin with the given config.
func loadStamp(tb testing.TB, config ...abi.ConfigEntry) (*plugins.Chain, error) {
	tb.Helper()
	return loadBuiltin(tb, "stamp", config...)
}

func newStamp(state abi.StampState, invalid ...int) *abi.Stamp {
	return &abi.Stamp{ID: "k3j2h1", FirstSeen: 1740000000, HeaderName: stampHeader,
		HeaderValue: "k3j2h1; t=1740000000", State: state, Invalid: invalid}
}

func messageEvent(headers ...abi.Header) *abi.Event {
	return &abi.Event{QueueID: "4Q", From: "a@example.org", Rcpts: []abi.Recipient{{Addr: "b@example.net"}},
		Headers: append([]abi.Header{{Name: "Subject", Value: "hi"}}, headers...)}
}

func TestStampPolicy(t *testing.T) {
	forged := abi.Header{Name: stampHeader, Value: "forged"}
	add := abi.Action{Kind: abi.AddHeader, Name: stampHeader, Value: "k3j2h1; t=1740000000"}
	tests := []struct {
		name   string
		config []abi.ConfigEntry
		stamp  *abi.Stamp
		event  *abi.Event
		want   []abi.Action
	}{
		{"new message is stamped once", nil, newStamp(abi.StampNew), messageEvent(), []abi.Action{add}},
		{"carried stamp is kept", nil, newStamp(abi.StampCarried),
			messageEvent(abi.Header{Name: stampHeader, Value: "k3j2h1; t=1740000000"}), nil},
		{"forged stamps are removed, highest first, and ours added", nil, newStamp(abi.StampForged, 1, 3),
			messageEvent(forged, abi.Header{Name: stampHeader, Value: "ok?"}, forged),
			[]abi.Action{{Kind: abi.DeleteHeader, Name: stampHeader, Index: 3}, {Kind: abi.DeleteHeader, Name: stampHeader, Index: 1}, add}},
		{"remove_forged = false keeps them", []abi.ConfigEntry{{Key: "remove_forged", Values: []string{"false"}}},
			newStamp(abi.StampForged, 1), messageEvent(forged), []abi.Action{add}},
		{"position = top inserts first", []abi.ConfigEntry{{Key: "position", Values: []string{"top"}}},
			newStamp(abi.StampNew), messageEvent(),
			[]abi.Action{{Kind: abi.InsertHeader, Index: 0, Name: stampHeader, Value: "k3j2h1; t=1740000000"}}},
		{"no stamp from the host, no header", nil, nil, messageEvent(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := loadStamp(t, tt.config...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			res := chain.Run(context.Background(), abi.HookMessage, tt.event, wasmtest.Env{MsgStamp: tt.stamp})
			if len(res.Failures) > 0 {
				t.Fatalf("failures: %v", res.Failures)
			}
			if res.Verdict != abi.Continue || !reflect.DeepEqual(res.Actions, tt.want) {
				t.Errorf("got %v %+v\nwant continue %+v", res.Verdict, res.Actions, tt.want)
			}
		})
	}
}

func TestStampAsksOnlyForTheMessageHook(t *testing.T) {
	chain, err := loadStamp(t)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := abi.HookSet(0).With(abi.HookMessage); chain.Hooks() != want {
		t.Errorf("hooks = %v, want %v", chain.Hooks(), want)
	}
}

func TestStampRefusesBadConfig(t *testing.T) {
	for _, cfg := range []abi.ConfigEntry{
		{Key: "position", Values: []string{"middle"}},
		{Key: "remove_forged", Values: []string{"maybe"}},
	} {
		_, err := loadStamp(t, cfg)
		if err == nil || !strings.Contains(err.Error(), cfg.Key) {
			t.Errorf("config %s = %q: Load err = %v, want an error naming the key", cfg.Key, cfg.Values, err)
		}
	}
}

// BenchmarkStampHook20Headers is one message-hook call of the shipped stamp
// plugin on a 20-header event through plugins.Host: event encoding, the copy
// into the guest, the SDK's decoding, the stamp host function, the answer and
// its validation.
func BenchmarkStampHook20Headers(b *testing.B) {
	chain, err := loadStamp(b)
	if err != nil {
		b.Fatalf("Load: %v", err)
	}
	var headers []abi.Header
	for i := range 19 {
		headers = append(headers, abi.Header{Name: fmt.Sprintf("X-Header-%d", i), Value: strings.Repeat("v", 80)})
	}
	ev := messageEvent(headers...)
	env := wasmtest.Env{MsgStamp: newStamp(abi.StampNew)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev.Now = 0 // Run sets it; keep every iteration the same
		res := chain.Run(ctx, abi.HookMessage, ev, env)
		if len(res.Actions) != 1 || len(res.Failures) > 0 {
			b.Fatalf("unexpected result %+v", res)
		}
	}
}
