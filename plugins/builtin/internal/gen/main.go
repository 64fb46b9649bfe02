// Command gen rebuilds every builtin plugin and records the hashes of their
// sources. It is run by `go generate ./plugins/builtin`:
//
//   - each subdirectory of plugins/builtin (except internal and testdata) is
//     built for GOOS=wasip1 GOARCH=wasm as a reactor, stripped and with
//     -trimpath so the output does not depend on the machine, into
//     plugins/builtin/<name>.wasm;
//   - plugins/builtin/SOURCES.sum is rewritten with the sha256 of every source
//     file that went into each builtin, which the builtin package's test
//     compares against the tree.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/wasmilter/wasmilter/internal/modroot"
	"github.com/wasmilter/wasmilter/plugins/builtin/internal/sources"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := modroot.Find()
	if err != nil {
		return err
	}
	names, err := sources.Builtins(root)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := buildBuiltin(root, name); err != nil {
			return err
		}
	}
	entries, err := sources.Compute(root)
	if err != nil {
		return err
	}
	sum := sources.Format(goVersion(root), entries)
	return writeFile(filepath.Join(root, sources.Dir, sources.SumFile), sum)
}

// buildBuiltin compiles one builtin into plugins/builtin/<name>.wasm.
func buildBuiltin(root, name string) error {
	out := filepath.Join(root, sources.Dir, name+".wasm")
	tmp := out + ".tmp"
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w",
		"-o", tmp, "./"+sources.Dir+"/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("building builtin %s: %w\n%s", name, err, stderr.Bytes())
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("building builtin %s: %w", name, err)
	}
	return nil
}

// goVersion is the version of the go command that built the builtins (not
// of this generator's runtime, which `go run` may have built differently).
func goVersion(root string) string {
	cmd := exec.Command("go", "env", "GOVERSION")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

// writeFile replaces a file atomically, so an interrupted run never leaves
// a half-written SOURCES.sum.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
