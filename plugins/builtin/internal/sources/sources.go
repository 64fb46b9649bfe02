// Package sources knows what goes into each builtin plugin: which
// directories under plugins/builtin are builtins, which source files (and
// which external module versions) each one is compiled from, and the
// SOURCES.sum format that records their hashes. The generator writes the
// file; the builtin package's test recomputes it to detect stale Wasm.
package sources

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Dir is the builtin directory, relative to the module root.
const Dir = "plugins/builtin"

// SumFile is the name of the hash file in Dir.
const SumFile = "SOURCES.sum"

// notBuiltins are subdirectories of Dir that hold no plugin.
var notBuiltins = map[string]bool{"internal": true, "testdata": true}

// Builtins returns the names of the Wasm modules built for the builtin
// plugins: every subdirectory of Dir (except internal and testdata) that
// holds a command (package main), sorted. The policies themselves are
// library packages next to it, built into that module.
func Builtins(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, Dir))
	if err != nil {
		return nil, fmt.Errorf("listing builtins: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || notBuiltins[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		isMain, err := holdsCommand(filepath.Join(root, Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if isMain {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// holdsCommand reports whether a directory's Go files are package main.
func holdsCommand(dir string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, fmt.Errorf("listing builtins: %w", err)
		}
		if bytes.Contains(b, []byte("\npackage main\n")) {
			return true, nil
		}
	}
	return false, nil
}

// Entry is one line of SOURCES.sum: a file of a builtin and its hash, or an
// external module the builtin depends on and its version.
type Entry struct {
	Builtin string
	Hash    string // hex sha256 of the file, or "module" for a dependency
	Path    string // module-root-relative file path, or module@version
}

func (e Entry) String() string { return e.Builtin + " " + e.Hash + " " + e.Path }

// Compute returns the entries of every builtin, sorted.
func Compute(root string) ([]Entry, error) {
	root, err := filepath.Abs(root) // go list reports absolute directories
	if err != nil {
		return nil, fmt.Errorf("locating the module root: %w", err)
	}
	names, err := Builtins(root)
	if err != nil {
		return nil, err
	}
	var all []Entry
	for _, name := range names {
		entries, err := computeOne(root, name)
		if err != nil {
			return nil, fmt.Errorf("builtin %s: %w", name, err)
		}
		all = append(all, entries...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Builtin != all[j].Builtin {
			return all[i].Builtin < all[j].Builtin
		}
		return all[i].Path < all[j].Path
	})
	return all, nil
}

// goListFormat prints, for every non-standard package the builtin is built
// from, its directory, its module and its source files.
const goListFormat = `{{if not .Standard}}{{.Dir}}|{{with .Module}}{{.Path}}|{{.Version}}|{{.Main}}{{end}}|` +
	`{{join .GoFiles ","}},{{join .SFiles ","}},{{join .EmbedFiles ","}}{{end}}`

// computeOne asks the go command which packages build the builtin for
// wasip1, so sdk/ and sdk/abi/ (and anything else added later) are covered
// without a hand-kept list.
func computeOne(root, name string) ([]Entry, error) {
	cmd := exec.Command("go", "list", "-deps", "-f", goListFormat, "./"+Dir+"/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.Bytes())
	}
	var entries []Entry
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		pkgEntries, err := packageEntries(root, name, sc.Text())
		if err != nil {
			return nil, err
		}
		entries = append(entries, pkgEntries...)
	}
	return dedupe(entries), nil
}

// packageEntries turns one go list line into entries: a hash per file for a
// package of this module, the module version for a dependency.
func packageEntries(root, builtin, line string) ([]Entry, error) {
	f := strings.Split(line, "|")
	if len(f) != 5 {
		return nil, fmt.Errorf("unexpected go list line %q", line)
	}
	dir, modPath, modVersion, isMain, files := f[0], f[1], f[2], f[3], f[4]
	if isMain != "true" {
		return []Entry{{Builtin: builtin, Hash: "module", Path: modPath + "@" + modVersion}}, nil
	}
	var entries []Entry
	for _, file := range strings.Split(files, ",") {
		if file == "" {
			continue
		}
		abs := filepath.Join(dir, file)
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			return nil, fmt.Errorf("locating %s: %w", abs, err)
		}
		sum, err := hashFile(abs)
		if err != nil {
			return nil, err
		}
		entries = append(entries, Entry{Builtin: builtin, Hash: sum, Path: filepath.ToSlash(rel)})
	}
	return entries, nil
}

// hashFile hashes a source file with line endings normalized to LF, so a
// checkout that converts them does not look stale.
func hashFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("hashing: %w", err)
	}
	sum := sha256.Sum256(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	return hex.EncodeToString(sum[:]), nil
}

func dedupe(entries []Entry) []Entry {
	seen := map[Entry]bool{}
	out := entries[:0]
	for _, e := range entries {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

const header = "# Code generated by go generate ./plugins/builtin. DO NOT EDIT.\n" +
	"# Each line: builtin, sha256 of a source file (or \"module\"), path (or module@version).\n"

// Format renders SOURCES.sum. The Go version is recorded for the reader but
// not compared by the staleness test: a different patch release on another
// machine does not make the committed Wasm wrong.
func Format(goVersion string, entries []Entry) []byte {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("# built with " + goVersion + "\n")
	for _, e := range entries {
		b.WriteString(e.String() + "\n")
	}
	return []byte(b.String())
}

// Parse reads the entries of a SOURCES.sum, ignoring comments.
func Parse(data []byte) ([]Entry, error) {
	var entries []Entry
	for i, line := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: want 3 fields, got %q", SumFile, i+1, line)
		}
		entries = append(entries, Entry{Builtin: f[0], Hash: f[1], Path: f[2]})
	}
	return entries, nil
}

// Diff describes how two entry lists differ, one line per difference; empty
// when they are equal.
func Diff(recorded, current []Entry) []string {
	rec := map[string]string{}
	for _, e := range recorded {
		rec[e.Builtin+" "+e.Path] = e.Hash
	}
	cur := map[string]string{}
	for _, e := range current {
		cur[e.Builtin+" "+e.Path] = e.Hash
	}
	var out []string
	for k, h := range cur {
		switch old, ok := rec[k]; {
		case !ok:
			out = append(out, "new source:     "+k)
		case old != h:
			out = append(out, "changed source: "+k)
		}
	}
	for k := range rec {
		if _, ok := cur[k]; !ok {
			out = append(out, "removed source: "+k)
		}
	}
	sort.Strings(out)
	return out
}
