package plugins

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// timings is an Observer that keeps what it is told.
type timings struct {
	mu    sync.Mutex
	calls map[string]int // "plugin/hook" -> calls observed
}

type timing struct {
	t   *timings
	key string
}

func (t *timings) HookTimer(plugin, hook string) Timer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls == nil {
		t.calls = map[string]int{}
	}
	t.calls[plugin+"/"+hook] += 0 // resolved, not yet called
	return timing{t, plugin + "/" + hook}
}

func (t timing) Observe(float64) {
	t.t.mu.Lock()
	t.t.calls[t.key]++
	t.t.mu.Unlock()
}

// messageEnv is an Env that names its message in log lines, as the
// pipeline's session does.
type messageEnv struct{ testEnv }

func (messageEnv) LogAttrs() []slog.Attr {
	return []slog.Attr{slog.String("queue_id", "4ABC123DEF"), slog.String("identity", "id-of-the-message")}
}

// TestObserverAndFailureLog: every call of a hook the plugin has is timed
// (failures included), timers are resolved only for its hooks, and the
// failure's log line carries the message's queue ID and identity.
func TestObserverAndFailureLog(t *testing.T) {
	obs := &timings{}
	h, logs := newTestHost(t, func(c *HostConfig) { c.Observer = obs })
	loop := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: 50 * time.Millisecond, OnError: OnErrorTempFail})
	chain := NewChain(loop)
	env := messageEnv{testEnv{macros: map[string]string{"i": "4ABC123DEF"}}}
	ctx := context.Background()
	if res := chain.Run(ctx, abi.HookConnect, headerEvent(1), env); res.Verdict != abi.Continue {
		t.Fatalf("connect: %+v", res)
	}
	res := chain.Run(ctx, abi.HookHeaders, headerEvent(1), env)
	if res.Verdict != abi.TempFail || len(res.Failures) != 1 || res.Failures[0].Kind != FailureTimeout {
		t.Fatalf("headers of the looping plugin: %+v", res)
	}

	obs.mu.Lock()
	calls := obs.calls
	obs.mu.Unlock()
	want := map[string]int{"loop/connect": 1, "loop/headers": 1}
	if len(calls) != len(want) || calls["loop/connect"] != 1 || calls["loop/headers"] != 1 {
		t.Errorf("observed calls %v, want %v (and no timer for hooks the plugin lacks)", calls, want)
	}
	failed := logs.find(func(l recordedLog) bool { return l.Message == "plugin failed" })
	if len(failed) != 1 {
		t.Fatalf("%d 'plugin failed' lines, want 1", len(failed))
	}
	for k, v := range map[string]string{"plugin": "loop", "hook": "headers", "kind": "timeout",
		"queue_id": "4ABC123DEF", "identity": "id-of-the-message"} {
		if got := failed[0].Attrs[k]; got != v {
			t.Errorf("failure line: %s=%q, want %q (line %+v)", k, got, v, failed[0].Attrs)
		}
	}
	if n := loop.Stats().Failures[FailureTimeout]; n != 1 {
		t.Errorf("timeouts counted %d, want 1", n)
	}
}

// TestFailureKindsAreAllNamed: metrics show every kind from zero, so the
// list must hold each kind once, each with a real name.
func TestFailureKindsAreAllNamed(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range FailureKinds() {
		name := k.String()
		if seen[name] || name == "" || name[0] == 'f' && len(name) > 8 && name[:8] == "failure(" {
			t.Errorf("kind %d: name %q repeated or unnamed", int(k), name)
		}
		seen[name] = true
	}
	if len(seen) != int(numFailureKinds) {
		t.Errorf("%d kinds listed, want %d", len(seen), numFailureKinds)
	}
}
