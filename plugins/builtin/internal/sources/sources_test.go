package sources

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSourcesDiff(t *testing.T) {
	a := []Entry{{Builtin: "stamp", Hash: "1", Path: "x.go"}, {Builtin: "stamp", Hash: "2", Path: "y.go"}}
	b := []Entry{{Builtin: "stamp", Hash: "1", Path: "x.go"}, {Builtin: "stamp", Hash: "3", Path: "y.go"}, {Builtin: "stamp", Hash: "4", Path: "z.go"}}
	got := Diff(a, b)
	want := []string{"changed source: stamp y.go", "new source:     stamp z.go"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	parsed, err := Parse(Format("go1.0", b))
	if err != nil || !reflect.DeepEqual(parsed, b) {
		t.Errorf("Parse(Format(x)) = %v, %v; want x back", parsed, err)
	}
	if _, err := Parse([]byte("stamp onlytwo\n")); err == nil {
		t.Error("Parse accepted a malformed line")
	}
}

// TestComputeNoticesChanges runs Compute on a scratch module with one
// builtin and checks that editing its source shows up in the Diff.
func TestComputeNoticesChanges(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.test/m\n\ngo 1.24\n")
	write("lib/lib.go", "package lib\n\nconst Greeting = \"hi\"\n")
	write(Dir+"/hello/main.go", "//go:build wasip1\n\npackage main\n\nimport _ \"example.test/m/lib\"\n\nfunc main() {}\n")
	write(Dir+"/internal/gen/main.go", "package main\n\nfunc main() {}\n") // not a builtin

	before, err := Compute(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range before {
		paths = append(paths, e.Builtin+" "+e.Path)
	}
	if want := []string{"hello lib/lib.go", "hello " + Dir + "/hello/main.go"}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("entries %q, want %q (a dependency of the builtin must be covered)", paths, want)
	}

	write("lib/lib.go", "package lib\n\nconst Greeting = \"hello\"\n")
	after, err := Compute(root)
	if err != nil {
		t.Fatal(err)
	}
	if diff := Diff(before, after); !reflect.DeepEqual(diff, []string{"changed source: hello lib/lib.go"}) {
		t.Errorf("Diff after editing a dependency = %q", diff)
	}
}
