//go:build wasip1

// Command builtins is the one Wasm module behind every builtin plugin
// (builtin:stamp, builtin:delaynotify). The host sets WASMILTER_BUILTIN in
// the guest's environment to the builtin's name, and the module registers
// that policy.
//
// Why one module: a Go guest is ~3 MB of Wasm and ~11 MB of machine code,
// mostly the Go runtime, whatever the policy. wazero's compilation cache
// keeps one compiled copy per distinct module and shares it between the
// plugins' runtimes, so both builtins together cost one copy of machine
// code instead of two: ~11 MiB less resident memory (docs/BENCHMARKS.md).
package main

import (
	"errors"
	"os"

	"github.com/wasmilter/wasmilter/plugins/builtin/delaynotify"
	"github.com/wasmilter/wasmilter/plugins/builtin/stamp"
	"github.com/wasmilter/wasmilter/sdk"
)

// selectEnv names the environment variable the host sets; the builtin
// package's Lookup uses the same name.
const selectEnv = "WASMILTER_BUILTIN"

// policies are the builtins by name; builtin.Names lists the same names.
var policies = map[string]func() sdk.Plugin{
	"delaynotify": delaynotify.Plugin,
	"stamp":       stamp.Plugin,
}

func init() {
	name := os.Getenv(selectEnv)
	policy, ok := policies[name]
	if !ok {
		// Refuse to start, saying why, rather than run a policy nobody chose.
		err := errors.New("builtins module: " + selectEnv + "=" + name + " names no builtin policy")
		sdk.Register(sdk.Plugin{Init: func(sdk.Config) error { return err }, Message: func(*sdk.Message) sdk.Verdict { return sdk.Continue() }})
		return
	}
	sdk.Register(policy())
}

func main() {}
