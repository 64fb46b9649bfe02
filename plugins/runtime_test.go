package plugins

import (
	"context"
	"errors"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// TestPluginsOfOneModuleShareARuntime: two plugins loaded from the same
// bytes with the same memory limit share one runtime and compiled module,
// yet each counts in its own key/value namespace and logs under its own
// name; a third with another memory limit gets a runtime of its own.
// Closing one leaves the other working; the last one closes the runtime.
func TestPluginsOfOneModuleShareARuntime(t *testing.T) {
	kv := &testKV{}
	h, rec := newTestHost(t, func(c *HostConfig) { c.KV = kv })
	wasm := watFile(t, "counter")
	a := load(t, h, Spec{Name: "a", Wasm: wasm})
	b := load(t, h, Spec{Name: "b", Wasm: wasm})
	c := load(t, h, Spec{Name: "c", Wasm: wasm, MemoryLimit: 1 << 20})
	if a.shared != b.shared {
		t.Fatal("plugins of the same module and memory limit do not share a runtime")
	}
	if c.shared == a.shared {
		t.Fatal("a plugin with another memory limit shares the runtime")
	}

	run := func(p *Plugin) {
		t.Helper()
		res := NewChain(p).Run(context.Background(), abi.HookMessage, nil, nil)
		if res.Verdict != abi.Continue || len(res.Failures) != 0 {
			t.Fatalf("plugin %s: %+v", p.Name(), res)
		}
	}
	run(a)
	run(a)
	run(b)
	run(c)
	if got := kv.ctrs; got["a/n"] != 2 || got["b/n"] != 1 || got["c/n"] != 1 || len(got) != 3 {
		t.Errorf("counters %v, want a/n=2 b/n=1 c/n=1", got)
	}
	for name, want := range map[string]int{"a": 2, "b": 1, "c": 1} {
		lines := rec.find(func(l recordedLog) bool { return l.Message == "counted" && l.Attrs["plugin"] == name })
		if len(lines) != want {
			t.Errorf("plugin %s logged %d lines under its name, want %d", name, len(lines), want)
		}
	}

	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(b) // the shared runtime stays open for b
	if got := kv.ctrs["b/n"]; got != 2 {
		t.Errorf("b/n = %d after a closed, want 2", got)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	left := len(h.runtimes)
	h.mu.Unlock()
	if left != 1 {
		t.Errorf("%d runtimes left after a and b closed, want 1 (c's)", left)
	}
	if b.shared.rt.Module(abi.HostModule) != nil {
		t.Error("the runtime of a and b is still open after both closed")
	}
}

// TestRuntimeOfAFailedLoadIsNotKept: a module that fails to load leaves no
// runtime behind, and the next load of the same bytes tries again.
func TestRuntimeOfAFailedLoadIsNotKept(t *testing.T) {
	h, _ := newTestHost(t)
	bad := watFile(t, "initerror")
	for i := 0; i < 2; i++ {
		if _, err := h.Load(context.Background(), Spec{Name: "bad", Wasm: bad}); err == nil {
			t.Fatal("a plugin whose init fails loaded")
		}
	}
	h.mu.Lock()
	left := len(h.runtimes)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d runtimes kept after failed loads, want 0", left)
	}
}

// TestInstanceCreatedAfterCloseIsClosed: an instance a background
// replacement creates after its plugin closed (a Close that stopped
// waiting) is closed at once, not left in the runtime the plugin shares.
func TestInstanceCreatedAfterCloseIsClosed(t *testing.T) {
	h, _ := newTestHost(t)
	wasm := watFile(t, "counter")
	a := load(t, h, Spec{Name: "a", Wasm: wasm})
	b := load(t, h, Spec{Name: "b", Wasm: wasm}) // keeps the shared runtime open
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	inst, _, err := a.newInstance(context.Background())
	if !errors.Is(err, errPluginClosed) || inst != nil {
		t.Fatalf("newInstance after Close: %v, %v; want errPluginClosed", inst, err)
	}
	if res := NewChain(b).Run(context.Background(), abi.HookMessage, nil, nil); len(res.Failures) != 0 {
		t.Fatalf("the plugin sharing the runtime: %+v", res.Failures)
	}
}
