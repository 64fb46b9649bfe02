package main

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/internal/modroot"
)

// TestPluginNewBuildsAndPasses scaffolds a plugin against this checkout and
// does what its README says: tidy, vet, build to Wasm, and run its test,
// which loads the plugin through the host.
func TestPluginNewBuildsAndPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a separate module; skipped in -short")
	}
	root, err := modroot.Find()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "nolottery")
	code, stdout, stderr := wasmctl(t, "plugin", "new", "-dir", dir, "-replace", root, "example.org/nolottery")
	if code != 0 {
		t.Fatalf("plugin new: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "go test ./...") {
		t.Errorf("plugin new does not say what to do next:\n%s", stdout)
	}
	for _, f := range []string{"main.go", "main_test.go"} {
		requireGofmt(t, filepath.Join(dir, f))
	}
	// The checkout's go.sum holds every hash the plugin's dependencies need,
	// so tidy runs offline and checks them.
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(dir, "go.sum"))
	goCmd(t, dir, []string{"GOFLAGS=-mod=mod"}, "mod", "tidy")
	goCmd(t, dir, nil, "vet", ".")
	goCmd(t, dir, []string{"GOOS=wasip1", "GOARCH=wasm"}, "vet", ".")
	goCmd(t, dir, []string{"GOOS=wasip1", "GOARCH=wasm"}, "build", "-buildmode=c-shared", "-o", filepath.Join(t.TempDir(), "p.wasm"), ".")
	out := goCmd(t, dir, nil, "test", "-count=1", "-v", ".")
	for _, test := range []string{"TestPlugin", "TestPluginRefusesEmptyWord"} {
		if !strings.Contains(out, "--- PASS: "+test+" ") {
			t.Errorf("the scaffold's %s did not pass:\n%s", test, out)
		}
	}
}

// goCmd runs the go command in dir, offline and with the local toolchain,
// and fails the test with its output.
func goCmd(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	return out.String()
}

func requireGofmt(t *testing.T, path string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	formatted, err := format.Source(src)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !bytes.Equal(src, formatted) {
		t.Errorf("%s is not gofmt-clean", filepath.Base(path))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPluginNewGoMod(t *testing.T) {
	cases := []struct {
		name      string
		s         scaffold
		want, not []string
	}{
		{"release", scaffold{Module: "example.org/p", Version: "v1.2.3"},
			[]string{"module example.org/p\n", "require github.com/wasmilter/wasmilter v1.2.3\n", "// replace github.com/wasmilter/wasmilter => ../wasmilter"},
			[]string{"\nreplace"}},
		{"development build", scaffold{Module: "p"},
			[]string{"module p\n", `"go mod tidy" adds a require`, "// replace github.com/wasmilter/wasmilter => ../wasmilter"},
			[]string{"\nrequire", "\nreplace"}},
		{"checkout", scaffold{Module: "p", Version: "v1.2.3", Replace: "../wasmilter"},
			[]string{"\nreplace github.com/wasmilter/wasmilter => ../wasmilter\n", "require github.com/wasmilter/wasmilter v0.0.0-"},
			[]string{"v1.2.3"}},
	}
	for _, c := range cases {
		c.s.GoVersion = "1.26"
		gomod, err := renderTemplate("go.mod.tmpl", c.s)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(gomod), w) {
				t.Errorf("%s: go.mod lacks %q:\n%s", c.name, w, gomod)
			}
		}
		for _, n := range c.not {
			if strings.Contains(string(gomod), n) {
				t.Errorf("%s: go.mod has %q:\n%s", c.name, n, gomod)
			}
		}
	}
}

func TestPluginNewRefuses(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "keep.txt", "work in progress")
	code, _, stderr := wasmctl(t, "plugin", "new", "-dir", dir, "p")
	if code != 1 || !strings.Contains(stderr, "not empty") {
		t.Errorf("into a non-empty directory: exit %d, %s", code, stderr)
	}
	for _, name := range []string{"two words", "-flag", "a//b", "quo\"te", ".hidden"} {
		code, _, stderr := wasmctl(t, "plugin", "new", "-dir", filepath.Join(t.TempDir(), "x"), name)
		if code == 0 {
			t.Errorf("name %q: exit %d, %s", name, code, stderr)
		}
	}
	if code, _, stderr := wasmctl(t, "plugin"); code != 2 || !strings.Contains(stderr, "plugin new") {
		t.Errorf("plugin without new: exit %d, %s", code, stderr)
	}
}
