package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/config"
)

// The systemd example: examples/systemd/wasmilter.service runs
// `wasmilter serve -config /etc/wasmilter/wasmilter.toml`, and
// examples/systemd/wasmilter.toml is that config. These tests keep the two
// valid and consistent with each other.

// exampleDir is a directory of the repository's examples.
func exampleDir(name string) string {
	return filepath.Join(origWD, "..", "..", "examples", name)
}

// productDirs are the service's directories the config names. check
// creates the compilation cache, so a test that ran it on the real paths
// would write to /var/cache (and fail where that is not writable).
var productDirs = []string{"/var/lib/wasmilter", "/var/cache/wasmilter", "/run/wasmilter"}

// systemdConfigInTempDir copies the example config with its /var and /run
// paths moved below a temp dir.
func systemdConfigInTempDir(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir("systemd"), "wasmilter.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := string(b)
	for _, p := range productDirs {
		if !strings.Contains(text, p+"/") {
			t.Fatalf("examples/systemd/wasmilter.toml no longer mentions %s; update this test", p)
		}
		text = strings.ReplaceAll(text, p+"/", filepath.Join(dir, p)+"/")
	}
	return writeFile(t, dir, "wasmilter.toml", text)
}

// TestSystemdExampleConfigChecks: `wasmilter check` accepts the example
// config (paths moved into a temp dir, see productDirs).
func TestSystemdExampleConfigChecks(t *testing.T) {
	cfg := systemdConfigInTempDir(t)
	inTempDir(t)
	code, out, errOut := wasmctl(t, "check", "-config", cfg)
	if code != 0 {
		t.Fatalf("check -config examples/systemd/wasmilter.toml: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"/run/wasmilter/milter.sock", "/var/lib/wasmilter/ledger.db", `plugin 1 "stamp"`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// unitSettings reads a unit file's Key=Value lines (all sections; a key
// given twice keeps its last value, as systemd does for most keys).
func unitSettings(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			settings[k] = v
		}
	}
	return settings
}

// TestSystemdUnitMatchesConfig: the unit and the config agree on what the
// unit provides and the server needs.
func TestSystemdUnitMatchesConfig(t *testing.T) {
	unit := unitSettings(t, filepath.Join(exampleDir("systemd"), "wasmilter.service"))
	cfg, err := config.Load(filepath.Join(exampleDir("systemd"), "wasmilter.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, set := unit["MemoryDenyWriteExecute"]; set {
		t.Error("MemoryDenyWriteExecute is set: wazero's compiler maps executable memory, so no plugin would load")
	}
	stop, err := time.ParseDuration(unit["TimeoutStopSec"])
	if err != nil {
		t.Fatalf("TimeoutStopSec %q: %v", unit["TimeoutStopSec"], err)
	}
	if stop <= cfg.Milter.ShutdownTimeout.Duration {
		t.Errorf("TimeoutStopSec %s does not exceed shutdown_timeout %s: systemd would SIGKILL a drain", stop, cfg.Milter.ShutdownTimeout)
	}
	wantPrefix := map[string]string{
		"StateDirectory":   strings.TrimPrefix(cfg.Retry.Store, "bolt:"),
		"CacheDirectory":   cfg.Runtime.CompilationCache,
		"RuntimeDirectory": strings.TrimPrefix(cfg.Milter.Listen, "unix:"),
	}
	base := map[string]string{"StateDirectory": "/var/lib/", "CacheDirectory": "/var/cache/", "RuntimeDirectory": "/run/"}
	for key, path := range wantPrefix {
		dir := base[key] + unit[key] + "/"
		if unit[key] == "" || !strings.HasPrefix(path, dir) {
			t.Errorf("%s=%s, but the config keeps %s there", key, unit[key], path)
		}
	}
	if !strings.Contains(unit["ExecStart"], "-config /etc/wasmilter/wasmilter.toml") {
		t.Errorf("ExecStart %q does not read /etc/wasmilter/wasmilter.toml", unit["ExecStart"])
	}
	if unit["ExecReload"] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("the last ExecReload is %q; the server reloads on SIGHUP", unit["ExecReload"])
	}
	if !strings.Contains(unit["SupplementaryGroups"], cfg.Milter.SocketGroup) || cfg.Milter.SocketGroup == "" {
		t.Errorf("socket_group %q is not among SupplementaryGroups %q", cfg.Milter.SocketGroup, unit["SupplementaryGroups"])
	}
}

// TestSystemdUnitVerifies runs `systemd-analyze verify` on the unit, with
// ExecStart pointed at a stand-in executable (verify insists that the
// binary exists). verify exits 0 even on unknown keys and bad values, so
// any output at all is a failure.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	b, err := os.ReadFile(filepath.Join(exampleDir("systemd"), "wasmilter.service"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stub := writeFile(t, dir, "wasmilter", "#!/bin/sh\n")
	if err := os.Chmod(stub, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := writeFile(t, dir, "wasmilter.service", strings.ReplaceAll(string(b), "/usr/local/bin/wasmilter", stub))
	cmd := exec.Command(analyze, "verify", unit)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
