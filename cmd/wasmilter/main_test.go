package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/stamp"
)

// wasmctl runs the command in-process and returns exit code, stdout, stderr.
func wasmctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// inTempDir runs the test from an empty directory, so the built-in
// defaults' relative compilation cache lands there and not in the repo.
func inTempDir(t *testing.T) string {
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func TestCheckDefaults(t *testing.T) {
	inTempDir(t)
	code, out, errOut := wasmctl(t, "check")
	if code != 0 {
		t.Fatalf("check on the built-in defaults: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"config built-in defaults: ok", `plugin 1 "stamp" (builtin:stamp)`,
		"hooks     message", "timeout 100ms, memory 64MiB", "on_error  tempfail",
		"retry ledger bolt:var/ledger.db, max_age 5d, on_store_error tempfail",
		"property cache 65536 entries, 64MiB, ttl 1h0m0s", "admin API 127.0.0.1:8898 (no token)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckReportsBadInput(t *testing.T) {
	badabiWasm := wasmtest.BuildGo(t, "./testdata/plugins/badabi") // before leaving the module
	dir := inTempDir(t)
	writeFile(t, dir, "notwasm.wasm", "#!/bin/sh\necho this is not wasm\n")
	if err := os.WriteFile(filepath.Join(dir, "badabi.wasm"), badabiWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config string
		want         []string
	}{
		{"malformed line", "[milter]\nlisten = \"inet:127.0.0.1:1\"\nread_timeout = 30\n",
			[]string{"bad.toml:3:", "read_timeout"}},
		{"unknown key", "[milter]\nlisen = \"inet:127.0.0.1:1\"\n", []string{"bad.toml:2: milter.lisen: unknown key"}},
		{"missing plugin file", "[[plugins]]\nname = \"gone\"\npath = \"gone.wasm\"\n",
			[]string{"bad.toml:3: plugins[0].path:", "gone.wasm", "no such file"}},
		{"not wasm", "[[plugins]]\nname = \"sh\"\npath = \"notwasm.wasm\"\n",
			[]string{"bad.toml:1: plugins[0]:", `plugin "sh"`, "not a WebAssembly module"}},
		{"ABI mismatch", "[[plugins]]\nname = \"old\"\npath = \"badabi.wasm\"\n",
			[]string{"plugins[0]:", `plugin "old"`, "ABI version 999", "speaks 1"}},
		{"unknown builtin", "[[plugins]]\nname = \"x\"\npath = \"builtin:nope\"\n",
			[]string{"bad.toml:3: plugins[0].path:", `no builtin plugin "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, dir, "bad.toml", c.config)
			code, out, errOut := wasmctl(t, "check", "-config", path)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestServeRefusesBadConfigBeforeListening(t *testing.T) {
	dir := inTempDir(t)
	path := writeFile(t, dir, "bad.toml", "[[plugins]]\nname = \"gone\"\npath = \"gone.wasm\"\n[milter]\nlisten = \"unix:"+
		filepath.Join(dir, "milter.sock")+"\"\n")
	code, _, errOut := wasmctl(t, "serve", "-config", path)
	if code != 1 || !strings.Contains(errOut, "gone.wasm") {
		t.Fatalf("serve with a missing plugin: exit %d, stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "milter.sock")); err == nil {
		t.Fatal("serve created its socket although the config was bad: half-started")
	}
}

var stampLine = regexp.MustCompile(`(?m)^\+ X-Wasmilter-Stamp: (v=1; id=([a-z2-7]{26}); t=\S+)$`)

func TestReplayStampsOnceWithStableIdentity(t *testing.T) {
	inTempDir(t)
	msg, _ := filepath.Abs(filepath.Join(origWD, "testdata/plain.eml"))
	code, out, errOut := wasmctl(t, "replay", msg)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "verdict: continue") {
		t.Errorf("verdict missing:\n%s", out)
	}
	m := stampLine.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("want exactly one added stamp header, got %d:\n%s", len(m), out)
	}
	want := stamp.Derive(stamp.Facts{Sender: "alice@example.org", Recipients: []string{"bob@example.net", "carol@example.net"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<quarterly-1@mail.example.org>"}}})
	if m[0][2] != want.String() {
		t.Errorf("stamp id %s, want the message identity %s", m[0][2], want)
	}
	// The same message replayed again gets the same identity: no clock in it.
	_, out2, _ := wasmctl(t, "replay", msg)
	if m2 := stampLine.FindStringSubmatch(out2); m2 == nil || m2[2] != m[0][2] {
		t.Errorf("second replay gave a different stamp id:\n%s", out2)
	}
}

func TestReplayKeepsACarriedStamp(t *testing.T) {
	dir := inTempDir(t)
	codec, _ := stamp.NewCodec("", nil)
	carried := codec.Format(stamp.Stamp{ID: stamp.Derive(stamp.Facts{Sender: "x@y"}), FirstSeen: mustTime(t)})
	orig, err := os.ReadFile(filepath.Join(origWD, "testdata/plain.eml"))
	if err != nil {
		t.Fatal(err)
	}
	msg := writeFile(t, dir, "stamped.eml", "X-Wasmilter-Stamp: "+carried+"\n"+string(orig))
	code, out, errOut := wasmctl(t, "replay", msg)
	if code != 0 || !strings.Contains(out, "changes: none") {
		t.Fatalf("a message carrying our stamp was changed (exit %d):\n%s%s", code, out, errOut)
	}
}

func TestReplayUsage(t *testing.T) {
	if code, _, errOut := wasmctl(t, "replay"); code != 2 || !strings.Contains(errOut, "usage: wasmilter replay") {
		t.Fatalf("replay without a file: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := wasmctl(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d\n%s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := wasmctl(t, "version")
	if code != 0 || !strings.Contains(out, "plugin ABI 1") || !strings.Contains(out, "wazero v1.") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
}
