package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
)

// TestQueueCommandsAgainstARunningServer: a plugin defers a message over the
// milter protocol; `wasmilter queue` lists, shows, releases and purges its
// record through the running server's admin API.
func TestQueueCommandsAgainstARunningServer(t *testing.T) {
	plugin := filepath.Join(t.TempDir(), "tempfail.wasm")
	if err := os.WriteFile(plugin, wasmtest.BuildGo(t, "./testdata/plugins/tempfail"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock, p, adminAddr := startServeWith(t, "5s", "[retry]\nstore = \"bolt:ledger.db\"\n[[plugins]]\nname = \"grey\"\npath = \""+plugin+"\"\n")

	s := mtaSession(t, sock)
	s.Mail("<alice@example.org>", nil)
	s.Rcpt("<bob@example.net>", nil)
	var h textproto.Header
	h.Add("Message-Id", "<queued@example.org>")
	h.Add("Subject", "Quarterly numbers")
	h.Add("X-Test-Tempfail", "yes")
	act, err := s.Header(h)
	if err != nil || act.Code != gomilter.ActReplyCode {
		t.Fatalf("the plugin did not defer: %+v %v\n%s", act, err, p.logs)
	}
	s.Close()

	code, out, errOut := wasmctl(t, "queue", "list", "-admin", adminAddr)
	if code != 0 || !strings.Contains(out, "deferred") || !strings.Contains(out, "Quarterly numbers") {
		t.Fatalf("queue list: exit %d\n%s%s\nserver log:\n%s", code, out, errOut, p.logs)
	}
	id := regexp.MustCompile(`(?m)^([a-z2-7]{26})\s+deferred`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no record ID in:\n%s", out)
	}
	code, out, errOut = wasmctl(t, "queue", "show", "-admin", adminAddr, id[1])
	if code != 0 || !strings.Contains(out, `"attempts": 1`) || !strings.Contains(out, "4.7.1") {
		t.Fatalf("queue show: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = wasmctl(t, "queue", "release", "-admin", adminAddr, id[1])
	if code != 0 || !strings.Contains(out, `"state": "released"`) {
		t.Fatalf("queue release: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = wasmctl(t, "queue", "show", "-admin", adminAddr, strings.Repeat("a", 26))
	if code != 1 || !strings.Contains(errOut, "no record for this message identity") {
		t.Fatalf("queue show of an unknown ID: exit %d\n%s", code, errOut)
	}
	code, out, _ = wasmctl(t, "queue", "purge", "-admin", adminAddr, "-older-than", "1h")
	if code != 0 || !strings.Contains(out, "purged 0 records") {
		t.Fatalf("queue purge: exit %d\n%s", code, out)
	}
	if code, _, errOut := wasmctl(t, "queue", "list", "-admin", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "is wasmilter serve running?") {
		t.Fatalf("queue list with no server: exit %d\n%s", code, errOut)
	}

	// The deferred message's header properties are in the cache.
	code, out, errOut = wasmctl(t, "cache", "stats", "-admin", adminAddr)
	if code != 0 || !regexp.MustCompile(`(?m)^properties\.entries\s+1$`).MatchString(out) {
		t.Fatalf("cache stats: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = wasmctl(t, "cache", "flush", "-admin", adminAddr, "-key", id[1])
	if code != 0 || !strings.Contains(out, `"flushed": true`) {
		t.Fatalf("cache flush -key: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = wasmctl(t, "cache", "stats", "-admin", adminAddr)
	if code != 0 || !regexp.MustCompile(`(?m)^properties\.entries\s+0$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^properties\.removed\.deleted\s+1$`).MatchString(out) {
		t.Fatalf("cache stats after the flush: exit %d\n%s", code, out)
	}
	if code, _, errOut := wasmctl(t, "cache", "flush", "-admin", adminAddr, "-key", "nonsense"); code != 1 || errOut == "" {
		t.Fatalf("cache flush of a malformed key: exit %d\n%s", code, errOut)
	}
}
