package conformance

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/modroot"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
)

// envRequireTools turns a missing toolchain from a skip into a failure.
const envRequireTools = "WASMILTER_REQUIRE_TOOLS"

// requireTool skips t, or fails it under WASMILTER_REQUIRE_TOOLS=1, because
// a toolchain is missing; msg says which and how to get it.
func requireTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(envRequireTools) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", msg, envRequireTools)
	}
	t.Skip(msg)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := modroot.Find()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a build command in dir and fails t with its output.
func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.Bytes())
	}
}

func readWasm(t *testing.T, path string) []byte {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// buildGo builds the Go SDK's nolottery twin.
func buildGo(t *testing.T) []byte {
	return wasmtest.BuildGo(t, "./internal/conformance/testdata/go")
}

// cFlags are the flags the C SDK documents (sdk/c/wasmilter.h), plus
// warnings as errors: the SDK and its example must compile cleanly.
var cFlags = []string{"--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror", "-Wl,--strip-all"}

// buildC builds examples/c with clang and the C SDK. A probe build first
// tells a missing toolchain (clang, lld, wasi-libc) from a broken SDK.
func buildC(t *testing.T) []byte {
	if _, err := exec.LookPath("clang"); err != nil {
		requireTool(t, "clang not found (apt-get install clang lld wasi-libc): the C SDK's example is not built")
	}
	if msg := probeC(t); msg != "" {
		requireTool(t, "clang cannot build a wasm32-wasi reactor (apt-get install clang lld wasi-libc): "+msg)
	}
	out := filepath.Join(t.TempDir(), "nolottery.wasm")
	args := append(append([]string{}, cFlags...), "-I", "sdk/c", "-o", out, "examples/c/nolottery.c", "sdk/c/wasmilter.c")
	run(t, moduleRoot(t), "clang", args...)
	return readWasm(t, out)
}

// probeC compiles and links a tiny program using libc; it returns the
// first line of clang's complaint, or "" when the toolchain works.
func probeC(t *testing.T) string {
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte("#include <stdlib.h>\nint probe(void) { return abs(-1); }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, cFlags...), "-o", filepath.Join(dir, "probe.wasm"), src)
	msg, err := exec.Command("clang", args...).CombinedOutput()
	if err == nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(msg)), "\n")
	return fmt.Sprintf("%v: %s", err, line)
}

// buildAssemblyScript builds examples/assemblyscript with the compiler its
// package-lock.json pins, installed by `npm ci` there (.ci/run does it).
func buildAssemblyScript(t *testing.T) []byte {
	if _, err := exec.LookPath("node"); err != nil {
		requireTool(t, "node not found (apt-get install nodejs npm): the AssemblyScript SDK's example is not built")
	}
	dir := filepath.Join(moduleRoot(t), "examples", "assemblyscript")
	asc := filepath.Join(dir, "node_modules", ".bin", "asc")
	if _, err := os.Stat(asc); err != nil {
		requireTool(t, "the AssemblyScript compiler is not installed: run `npm ci` in examples/assemblyscript (needs nodejs and npm)")
	}
	out := filepath.Join(t.TempDir(), "nolottery.wasm")
	run(t, dir, asc, "assembly/index.ts", "--config", "asconfig.json", "--target", "release", "--outFile", out)
	return readWasm(t, out)
}

// timedBuild builds a guest and logs its size and build time: the numbers
// a plugin author cares about when choosing a language.
func timedBuild(t *testing.T, build func(*testing.T) []byte) []byte {
	t.Helper()
	start := time.Now()
	wasm := build(t)
	t.Logf("built %d bytes in %v", len(wasm), time.Since(start).Round(time.Millisecond))
	return wasm
}
