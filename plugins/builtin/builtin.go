package builtin

import (
	"embed"
	"sort"
	"strings"
)

//go:generate go run ./internal/gen

//go:embed *.wasm
var wasmFiles embed.FS

const wasmSuffix = ".wasm"

// Lookup returns the Wasm module of the builtin plugin called name (e.g.
// "stamp"), and false when there is no such builtin. The caller gets its
// own copy of the bytes.
func Lookup(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, false
	}
	b, err := wasmFiles.ReadFile(name + wasmSuffix)
	if err != nil {
		return nil, false
	}
	return b, true
}

// Names returns the names of every builtin plugin, sorted.
func Names() []string {
	entries, err := wasmFiles.ReadDir(".")
	if err != nil { // cannot happen for the root of an embed.FS
		return nil
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), wasmSuffix); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
