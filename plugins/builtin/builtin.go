package builtin

import (
	_ "embed"
	"slices"
)

//go:generate go run ./internal/gen

// builtinsWasm is the one module behind every builtin (see
// plugins/builtin/builtins): the host tells it which policy to be.
//
//go:embed builtins.wasm
var builtinsWasm []byte

// SelectEnv is the guest environment variable that names the builtin the
// module is to be; plugins/builtin/builtins reads the same name.
const SelectEnv = "WASMILTER_BUILTIN"

// names are the builtins the module holds, sorted; its policies map has
// the same keys (TestEveryBuiltinLoads loads each one).
var names = []string{"delaynotify", "stamp"}

// Module is what the host needs to run a builtin: the Wasm bytes, shared
// by every builtin, and the environment that selects the policy.
type Module struct {
	Wasm []byte
	Env  map[string]string
}

// Lookup returns the module of the builtin plugin called name (e.g.
// "stamp"), and false when there is no such builtin. The caller gets its
// own copy of the bytes.
func Lookup(name string) (Module, bool) {
	if !slices.Contains(names, name) {
		return Module{}, false
	}
	return Module{Wasm: slices.Clone(builtinsWasm), Env: map[string]string{SelectEnv: name}}, true
}

// Names returns the names of every builtin plugin, sorted.
func Names() []string { return slices.Clone(names) }
