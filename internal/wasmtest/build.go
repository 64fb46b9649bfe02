package wasmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmilter/wasmilter/internal/modroot"
)

// BuildGo builds the Go guest package pkg, a path relative to the module root
// such as "./testdata/plugins/loop", and returns the Wasm module. Builds are
// cached for the life of the test process (the go command's own build cache
// makes a rebuild in a later process cheap too), and concurrent callers of
// the same package wait for one build. A failed build fails the test with the
// compiler's output.
func BuildGo(t testing.TB, pkg string) []byte {
	t.Helper()
	wasm, err := builds.get(pkg)
	if err != nil {
		t.Fatalf("wasmtest: %v", err)
	}
	return wasm
}

// cache remembers one build per package.
type cache struct {
	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	once sync.Once
	wasm []byte
	err  error
}

var builds = cache{entries: map[string]*entry{}}

func (c *cache) get(pkg string) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[pkg]
	if !ok {
		e = &entry{}
		c.entries[pkg] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.wasm, e.err = build(pkg) })
	return e.wasm, e.err
}

// build runs go build for wasip1 in the module root, into a temporary
// directory removed afterwards.
func build(pkg string) ([]byte, error) {
	if !strings.HasPrefix(pkg, "./") {
		return nil, fmt.Errorf("package %q: give a path relative to the module root, starting with ./", pkg)
	}
	root, err := modroot.Find()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wasmtest-")
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", pkg, err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "guest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", pkg, err)
	}
	return wasm, nil
}
