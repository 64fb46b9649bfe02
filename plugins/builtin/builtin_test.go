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

// TestEveryBuiltinIsEmbedded checks that each builtin source directory has
// its Wasm next to it and no Wasm is left without a source.
func TestEveryBuiltinIsEmbedded(t *testing.T) {
	dirs, err := sources.Builtins(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got := Names(); !reflect.DeepEqual(got, dirs) {
		t.Errorf("Names() = %q, but the builtin source directories are %q: run go generate ./plugins/builtin", got, dirs)
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		wasm, ok := Lookup(name)
		if !ok || !strings.HasPrefix(string(wasm), "\x00asm") {
			t.Errorf("Lookup(%q) = %d bytes, %v; want a Wasm module", name, len(wasm), ok)
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
