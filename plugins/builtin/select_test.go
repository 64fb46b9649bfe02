package builtin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// TestEveryBuiltinLoads loads each builtin from the one shared module and
// checks that the environment selected the right policy: each has exactly
// its own hooks.
func TestEveryBuiltinLoads(t *testing.T) {
	want := map[string]abi.HookSet{
		"stamp":       abi.HookSet(0).With(abi.HookMessage),
		"delaynotify": abi.HookSet(0).With(abi.HookDelay),
	}
	for _, name := range builtin.Names() {
		chain, err := loadBuiltin(t, name)
		if err != nil {
			t.Fatalf("builtin %s: %v", name, err)
		}
		if got := chain.Hooks(); got != want[name] {
			t.Errorf("builtin %s has hooks %s, want %s", name, got, want[name])
		}
	}
	if len(want) != len(builtin.Names()) {
		t.Errorf("builtins %q, test knows %d", builtin.Names(), len(want))
	}
}

// TestBuiltinModuleRefusesAnUnknownSelection: the shared module started
// without a known policy name refuses to start and says why, rather than
// running some policy.
func TestBuiltinModuleRefusesAnUnknownSelection(t *testing.T) {
	m, _ := builtin.Lookup("stamp")
	for _, env := range []map[string]string{nil, {builtin.SelectEnv: "nope"}} {
		_, err := sharedHost(t).Load(context.Background(), plugins.Spec{Name: "x", Source: "builtins.wasm", Wasm: m.Wasm, Env: env})
		if err == nil || !strings.Contains(err.Error(), "names no builtin policy") {
			t.Errorf("env %v: Load error %v, want the module's refusal", env, err)
		}
	}
}
