package builtin

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/plugins/builtin/internal/sources"
)

// moduleRoot is where go.mod is, relative to this package's directory.
const moduleRoot = "../.."

// TestBuiltinsAreFresh recomputes the source hashes of every builtin and
// compares them with SOURCES.sum. It never compares Wasm bytes, so it gives
// the same result on every machine.
func TestBuiltinsAreFresh(t *testing.T) {
	recorded, err := os.ReadFile(sources.SumFile)
	if err != nil {
		t.Fatalf("builtin plugins are stale: run go generate ./plugins/builtin (%v)", err)
	}
	want, err := sources.Parse(recorded)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sources.Compute(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	if diff := sources.Diff(want, got); len(diff) > 0 {
		t.Fatalf("builtin plugins are stale: run go generate ./plugins/builtin\n%s", strings.Join(diff, "\n"))
	}
}

// TestEveryBuiltinIsEmbedded checks that the one builtin module is the
// only command under plugins/builtin and is embedded, and that every name
// Lookup knows has its policy's source directory.
func TestEveryBuiltinIsEmbedded(t *testing.T) {
	dirs, err := sources.Builtins(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"builtins"}; !reflect.DeepEqual(dirs, want) {
		t.Errorf("modules built under plugins/builtin: %q, want %q (one module for every builtin)", dirs, want)
	}
	if len(builtinsWasm) == 0 {
		t.Error("builtins.wasm is not embedded: run go generate ./plugins/builtin")
	}
	for _, name := range Names() {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("builtin %q has no policy directory plugins/builtin/%s: %v", name, name, err)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		m, ok := Lookup(name)
		if !ok || !strings.HasPrefix(string(m.Wasm), "\x00asm") || m.Env[SelectEnv] != name {
			t.Errorf("Lookup(%q) = %d bytes, env %v, %v; want a Wasm module selecting %s", name, len(m.Wasm), m.Env, ok, name)
		}
	}
	if _, ok := Lookup("stamp"); !ok {
		t.Error("the stamp builtin is missing")
	}
	for _, bad := range []string{"", "nope", "../stamp", "stamp.wasm", "internal/x"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found something", bad)
		}
	}
}
