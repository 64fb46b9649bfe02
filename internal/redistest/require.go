package redistest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// EnvRequireTools names the variable that turns a missing redis-server from
// a skip into a failure. CI sets it: there a missing tool is a broken
// install, not an optional extra.
const EnvRequireTools = "WASMILTER_REQUIRE_TOOLS"

// Require skips t when redis-server is not installed, saying how to get
// it, or fails t if WASMILTER_REQUIRE_TOOLS=1.
func Require(t testing.TB) {
	t.Helper()
	if _, err := serverPath(); err == nil {
		return
	}
	msg := "redistest: command \"redis-server\" not found (apt-get install redis-server)"
	if os.Getenv(EnvRequireTools) == "1" {
		t.Fatal(msg + "; " + EnvRequireTools + "=1 makes this a failure")
	}
	t.Skip(msg)
}

// sbinDirs are searched after PATH, as mtatest does: a non-login root shell
// or a CI runner may lack them in PATH.
var sbinDirs = []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"}

// serverPath finds redis-server in PATH or the usual directories.
func serverPath() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		c := filepath.Join(dir, "redis-server")
		if fi, statErr := os.Stat(c); statErr == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", err
}
