package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
)

// opsFixture is a served server with its admin API, a ledger the test
// holds (and may close), a clock the test moves, JSON logs and a relay
// that records the delay notices it is handed.
type opsFixture struct {
	t      *testing.T
	sock   string
	admin  string
	srv    *server.Server
	ledger *retry.Bolt
	logs   *syncbuf.Buffer
	relay  *recordingRelay
	clock  *manualclock.Clock
}

type recordingRelay struct {
	mu   sync.Mutex
	sent []string
}

func (r *recordingRelay) Submit(_ context.Context, to string, _ []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, to)
	return nil
}

// newOpsFixture serves three plugins in order: loop (spins at the headers
// hook of a message with X-Test-Loop; 200 ms deadline, on_error continue),
// tempfail (defers a message with X-Test-Tempfail) and the builtin stamp.
func newOpsFixture(t *testing.T) *opsFixture {
	t.Helper()
	dir := t.TempDir()
	f := &opsFixture{t: t, sock: filepath.Join(dir, "milter.sock"), logs: &syncbuf.Buffer{}, relay: &recordingRelay{},
		clock: manualclock.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))}
	for _, g := range []string{"loop", "tempfail"} {
		if err := os.WriteFile(filepath.Join(dir, g+".wasm"), wasmtest.BuildGo(t, "./testdata/plugins/"+g), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	toml := fmt.Sprintf(`[milter]
listen = "unix:%s"
[runtime]
compilation_cache = %q
[admin]
listen = "127.0.0.1:0"
[notify]
hostname = "mx.example.org"
sweep_interval = "1h" # the test sweeps itself (SweepNotices)
[notify.policy.config]
local_domains = ["example.org"]
[[plugins]]
name = "loop"
path = "loop.wasm"
timeout = "200ms"
on_error = "continue"
[[plugins]]
name = "tempfail"
path = "tempfail.wasm"
timeout = "5s"
[[plugins]]
name = "stamp"
path = "builtin:stamp"
timeout = "5s"
`, f.sock, wasmtest.CompilationCacheDir(t))
	cfg, err := config.Parse([]byte(toml), filepath.Join(dir, "w.toml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	f.ledger, err = retry.OpenBolt(filepath.Join(dir, "ledger.db"), retry.BoltOptions{Clock: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ledger.Close() })
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.srv, err = server.Build(context.Background(), cfg, server.Options{Logger: log, Clock: f.clock.Now,
		Ledger: f.ledger, NoticeSender: f.relay})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Ready(context.Background()); err == nil {
		t.Error("a server that does not serve yet says it is ready")
	}
	ln, err := f.srv.Listen()
	if err != nil {
		f.srv.Release()
		t.Fatal(err)
	}
	adminLn, err := f.srv.ListenAdmin()
	if err != nil {
		ln.Close()
		f.srv.Release()
		t.Fatal(err)
	}
	f.admin = "http://" + adminLn.Addr().String()
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ln) }()
	go f.srv.ServeAdmin(adminLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, milter.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

// send runs one message through a fresh MTA session and returns the
// action that ended it (after the header or at end of message).
func (f *opsFixture) send(queueID, messageID string, extra ...string) gomilter.ActionCode {
	f.t.Helper()
	c := gomilter.NewClientWithOptions("unix", f.sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		f.t.Fatal(err)
	}
	defer s.Close()
	if err := s.Macros(gomilter.CodeMail, "i", queueID); err != nil {
		f.t.Fatal(err)
	}
	if _, err := s.Mail("alice@example.org", nil); err != nil {
		f.t.Fatal(err)
	}
	if _, err := s.Rcpt("bob@example.net", nil); err != nil {
		f.t.Fatal(err)
	}
	var h textproto.Header
	h.Add("From", "alice@example.org")
	h.Add("Message-Id", "<"+messageID+"@example.org>")
	for _, name := range extra {
		h.Add(name, "yes")
	}
	act, err := s.Header(h)
	if err != nil {
		f.t.Fatal(err)
	}
	if act.Code != gomilter.ActContinue {
		return act.Code
	}
	_, act, err = s.End()
	if err != nil {
		f.t.Fatal(err)
	}
	return act.Code
}

// get fetches an admin API path.
func (f *opsFixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.admin + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns the value of every series of /metrics, keyed as the
// exposition writes it (name{labels}).
func (f *opsFixture) scrape() map[string]string {
	f.t.Helper()
	code, body := f.get("/metrics")
	if code != http.StatusOK {
		f.t.Fatalf("/metrics: %d %s", code, body)
	}
	series := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series[line[:i]] = line[i+1:]
	}
	return series
}

// TestMetricsFollowTheMail drives messages through a served server with
// go-milter's client and checks that each metric moved by what was sent.
func TestMetricsFollowTheMail(t *testing.T) {
	f := newOpsFixture(t)
	if code, body := f.get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz of a serving server: %d %q", code, body)
	}
	sends := []struct {
		queueID, messageID string
		extra              []string
		want               gomilter.ActionCode
	}{
		{"QPASS1", "m1", nil, gomilter.ActContinue},
		{"QPASS2", "m1", nil, gomilter.ActContinue},                          // the same header again: a property cache hit
		{"QDEFER", "m2", []string{"X-Test-Tempfail"}, gomilter.ActReplyCode}, // 451 4.7.1
		{"QLOOP", "m3", []string{"X-Test-Loop"}, gomilter.ActContinue},       // loop times out; on_error continue
	}
	for _, s := range sends {
		if got := f.send(s.queueID, s.messageID, s.extra...); got != s.want {
			t.Fatalf("%s: action %q, want %q\n%s", s.queueID, got, s.want, f.logs)
		}
	}
	// A deferred message's sender is told after 30 minutes (the builtin
	// delay policy's first step).
	f.clock.Advance(31 * time.Minute)
	if _, err := f.srv.SweepNotices(context.Background()); err != nil {
		t.Fatal(err)
	}

	var m map[string]string
	waitFor(t, func() bool { // the server closes its side of each session after the client
		m = f.scrape()
		return m["wasmilter_milter_sessions_open"] == "0"
	}, "sessions_open back to 0")
	for series, want := range map[string]string{
		`wasmilter_messages_total{stage="message",verdict="pass"}`:                        "3",
		`wasmilter_messages_total{stage="headers",verdict="tempfail"}`:                    "1",
		`wasmilter_milter_sessions_total`:                                                 "4",
		`wasmilter_plugin_failures_total{kind="timeout",plugin="loop"}`:                   "1",
		`wasmilter_plugin_failures_total{kind="trap",plugin="loop"}`:                      "0",
		`wasmilter_plugin_failures_total{kind="timeout",plugin="tempfail"}`:               "0",
		`wasmilter_plugin_hook_duration_seconds_count{hook="headers",plugin="loop"}`:      "4",
		`wasmilter_plugin_hook_duration_seconds_count{hook="headers",plugin="tempfail"}`:  "4",
		`wasmilter_plugin_hook_duration_seconds_count{hook="delay",plugin="delaynotify"}`: "1",
		`wasmilter_cache_hits_total{table="properties"}`:                                  "1",
		`wasmilter_cache_misses_total{table="properties"}`:                                "3",
		`wasmilter_ledger_records{state="deferred"}`:                                      "1",
		`wasmilter_ledger_records{state="passed"}`:                                        "0",
		`wasmilter_ledger_up`: "1",
		`wasmilter_ledger_operation_duration_seconds_count{op="defer"}`: "1",
		`wasmilter_ledger_operation_duration_seconds_count{op="get"}`:   "4",
		`wasmilter_notify_notices_total{outcome="sent"}`:                "1",
		`wasmilter_notify_notices_total{outcome="failed"}`:              "0",
	} {
		if m[series] != want {
			t.Errorf("%s = %q, want %s", series, m[series], want)
		}
	}
	if !strings.HasPrefix(findSeries(m, "wasmilter_build_info{"), `wasmilter_build_info{abi_version="1"`) {
		t.Errorf("no build info: %q", findSeries(m, "wasmilter_build_info{"))
	}
	if len(f.relay.sent) != 1 {
		t.Errorf("the relay got %d notices, want 1\n%s", len(f.relay.sent), f.logs)
	}
	checkDeferralLogged(t, f.logs.String())
	checkLoopFailureLogged(t, f.logs.String())
}

func findSeries(m map[string]string, prefix string) string {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return k
		}
	}
	return ""
}

// checkDeferralLogged: the deferral's INFO line carries the MTA's queue ID,
// the identity and the stamp; the passing messages have no INFO line.
func checkDeferralLogged(t *testing.T, logs string) {
	t.Helper()
	var messages []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "message" {
			messages = append(messages, l)
		}
	}
	var deferral map[string]any
	for _, l := range messages {
		if l["queue_id"] == "QDEFER" {
			deferral = l
		}
		if l["queue_id"] == "QPASS1" || l["queue_id"] == "QPASS2" {
			t.Errorf("a plain pass is logged at %v, want DEBUG: %v", l["level"], l)
		}
	}
	if deferral == nil {
		t.Fatalf("no message line with queue_id QDEFER in:\n%s", logs)
	}
	id, _ := deferral["identity"].(string)
	st, _ := deferral["stamp"].(string)
	if deferral["level"] != "INFO" || deferral["verdict"] != "tempfail" || id == "" || !strings.Contains(st, "id="+id) {
		t.Errorf("deferral line: %v", deferral)
	}
}

// checkLoopFailureLogged: the plugin host's failure line names the message.
func checkLoopFailureLogged(t *testing.T, logs string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"plugin failed"`) {
			if !strings.Contains(line, `"queue_id":"QLOOP"`) || !strings.Contains(line, `"identity":`) {
				t.Errorf("the failure line does not name the message: %s", line)
			}
			return
		}
	}
	t.Errorf("no plugin failure logged:\n%s", logs)
}

// TestReadyzFollowsTheLedger: /readyz is 503 with the reason while the
// ledger cannot be read, /healthz stays 200, and the ledger count says down.
func TestReadyzFollowsTheLedger(t *testing.T) {
	f := newOpsFixture(t)
	if code, _ := f.get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz before: %d", code)
	}
	f.ledger.Close()
	code, body := f.get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "retry ledger unreachable") ||
		strings.Count(body, "\n") != 1 {
		t.Errorf("readyz with the ledger closed: %d %q, want 503 and one line naming the ledger", code, body)
	}
	if code, _ := f.get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz with the ledger closed: %d, want 200", code)
	}
	if m := f.scrape(); m["wasmilter_ledger_up"] != "0" {
		t.Errorf("ledger_up with the ledger closed: %q, want 0", m["wasmilter_ledger_up"])
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
