package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/modroot"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
)

// requireMiltertest skips without Debian's miltertest, or fails when
// WASMILTER_REQUIRE_TOOLS=1 or WASMILTER_E2E=1 promised the tools.
func requireMiltertest(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("miltertest")
	if err == nil {
		return path
	}
	const msg = "miltertest not found (apt-get install miltertest)"
	if os.Getenv("WASMILTER_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg + "; WASMILTER_REQUIRE_TOOLS=1 makes that a failure")
	}
	mtatest.Require(t, "miltertest") // fails under WASMILTER_E2E=1, else skips
	t.Skip(msg)
	return ""
}

// TestMiltertestExample runs examples/miltertest/wasmilter.lua with
// Debian's miltertest against a wasmilter built from
// examples/miltertest/wasmilter.toml (its listen line pointed at a socket
// in a temp dir): the first message gets the stamp header at end of
// message, the second the greylist's deferral, which the ledger holds
// with its 451 4.7.1 (miltertest sees only that a reply code came).
func TestMiltertestExample(t *testing.T) {
	miltertest := requireMiltertest(t)
	root, err := modroot.Find()
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(root, "examples", "miltertest")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greylist.wasm"), wasmtest.BuildGo(t, "./examples/greylist"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	f := startFilterIn(t, exampleConfig(t, filepath.Join(example, "wasmilter.toml"), sock), dir, server.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, miltertest, "-s", filepath.Join(example, "wasmilter.lua"),
		"-D", "socket=unix:"+sock, "-D", "run="+strings.ReplaceAll(t.Name(), "/", "."))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("miltertest: %v\n%s", err, out)
	}
	for _, want := range []string{"message 1: ", "X-Wasmilter-Stamp: v=1; id=", "message 2: replycode at end of message", "\nok\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("miltertest output lacks %q:\n%s", want, out)
		}
	}
	f.stop(t) // bbolt lets one process at a time hold the ledger
	checkGreylistedRecord(t, filepath.Join(dir, "ledger.db"))
}

// exampleConfig reads the example config with its listen line replaced.
func exampleConfig(t *testing.T, path, sock string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const listen = `listen = "inet:127.0.0.1:8897"`
	if !strings.Contains(string(b), listen) {
		t.Fatalf("%s no longer has %s; update this test", path, listen)
	}
	return strings.Replace(string(b), listen, `listen = "unix:`+sock+`"`+"\nsocket_mode = \"0600\"", 1)
}

// checkGreylistedRecord: the ledger holds the script's second message
// alone, deferred with the greylist's answer.
func checkGreylistedRecord(t *testing.T, path string) {
	t.Helper()
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatalf("opening the ledger: %v", err)
	}
	defer l.Close()
	recs, err := l.List(context.Background(), retry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d ledger records, want 1 (the greylisted message): %+v", len(recs), recs)
	}
	rec := recs[0]
	got := rec.History[0]
	if rec.State != retry.Deferred || rec.Sender != "carol@example.org" || got.QueueID != "4MT0002" ||
		got.Reason.Code != 451 || got.Reason.Enhanced != "4.7.1" {
		t.Errorf("record %+v (first attempt %+v): want carol@example.org's 4MT0002 deferred with 451 4.7.1", rec, got)
	}
}
