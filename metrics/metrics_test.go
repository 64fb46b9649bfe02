package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

func value(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	v, err := m.Value(name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestExposition: the handler serves the build info, the Go runtime and
// process collectors, and only wasmilter's own metrics beside them (a
// private registry: nothing from the global default).
func TestExposition(t *testing.T) {
	m := New(BuildInfo{Version: "v1.2.3", ABIVersion: "1", WazeroVersion: "v1.12.0"})
	body := scrape(t, m)
	for _, want := range []string{
		`wasmilter_build_info{abi_version="1",version="v1.2.3",wazero_version="v1.12.0"} 1`,
		"go_goroutines ", "process_start_time_seconds ", "wasmilter_milter_sessions_open 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "wasmilter_") && !strings.HasPrefix(line, "go_") && !strings.HasPrefix(line, "process_") {
			t.Errorf("a metric that is not ours: %s", line)
		}
	}
}

// TestMessageCounterIsLazy: a series appears at its first message, and
// every Inc lands on it.
func TestMessageCounterIsLazy(t *testing.T) {
	m := New(BuildInfo{})
	c := m.MessageCounter("headers", "tempfail")
	if _, err := m.Value("wasmilter_messages_total", "stage", "headers", "verdict", "tempfail"); err == nil {
		t.Fatal("a series exists before its first message")
	}
	c.Inc()
	c.Inc()
	if v := value(t, m, "wasmilter_messages_total", "stage", "headers", "verdict", "tempfail"); v != 2 {
		t.Errorf("messages = %v, want 2", v)
	}
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	if open, total := value(t, m, "wasmilter_milter_sessions_open"), value(t, m, "wasmilter_milter_sessions_total"); open != 1 || total != 2 {
		t.Errorf("sessions open %v total %v, want 1 and 2", open, total)
	}
}

// TestHotPathAllocatesNothing: counting a message, timing a hook call and a
// ledger operation allocate nothing once resolved.
func TestHotPathAllocatesNothing(t *testing.T) {
	m := New(BuildInfo{})
	c := m.MessageCounter("message", "pass")
	h := m.HookTimer("stamp", "headers")
	l := m.TimeLedger(nopLedger{})
	ctx := context.Background()
	c.Inc()
	if n := testing.AllocsPerRun(100, func() {
		c.Inc()
		h.Observe(0.0001)
		_, _ = l.Get(ctx, stamp.Identity{})
	}); n != 0 {
		t.Errorf("%v allocations per message, want 0", n)
	}
}

// nopLedger answers Get with ErrNotFound and nothing else.
type nopLedger struct{ retry.Ledger }

func (nopLedger) Get(context.Context, stamp.Identity) (retry.Record, error) {
	return retry.Record{}, retry.ErrNotFound
}

// TestCacheIsReadAtScrape: the cache's own counters come through, per table.
func TestCacheIsReadAtScrape(t *testing.T) {
	c, err := cache.New(cache.Config{MaxEntries: 2, MaxBytes: 1 << 20, TTL: time.Hour, KVShare: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	m := New(BuildInfo{})
	m.WatchCache(c.Stats)
	props := cache.Parse([]cache.Field{{Name: "Subject", Value: "hi"}}, cache.ParseOptions{})
	src := cache.SourceOf([]cache.Field{{Name: "Subject", Value: "hi"}})
	for i := range 3 { // the third store evicts the first (MaxEntries 2)
		c.Store(cache.Key(stamp.Derive(stamp.Facts{Sender: string(rune('a' + i))})), src, props)
	}
	key := cache.Key(stamp.Derive(stamp.Facts{Sender: "c"}))
	c.Lookup(key, src)
	c.Lookup(cache.Key(stamp.Derive(stamp.Facts{Sender: "a"})), src)
	if err := c.KVSet("greylist", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	c.KVGet("greylist", "k")
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmilter_cache_entries", []string{"table", "properties"}, 2},
		{"wasmilter_cache_hits_total", []string{"table", "properties"}, 1},
		{"wasmilter_cache_misses_total", []string{"table", "properties"}, 1},
		{"wasmilter_cache_evictions_total", []string{"table", "properties"}, 1},
		{"wasmilter_cache_removed_total", []string{"table", "properties", "reason", "capacity"}, 1},
		{"wasmilter_cache_entries", []string{"table", "kv"}, 1},
		{"wasmilter_cache_hits_total", []string{"table", "kv"}, 1},
	} {
		if v := value(t, m, tc.name, tc.labels...); v != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
}

// TestLedgerRecordsByState: records are counted per state from the index,
// every state shown, and a closed ledger reads as down, not as empty.
func TestLedgerRecordsByState(t *testing.T) {
	l, err := retry.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), retry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for i, pass := range []bool{false, false, true} {
		id := stamp.Derive(stamp.Facts{Sender: string(rune('a'+i)) + "@example.org"})
		if _, err := l.Defer(ctx, retry.Deferral{ID: id, Attempt: retry.Attempt{At: now, Reason: retry.Reason{Code: 451}}}); err != nil {
			t.Fatal(err)
		}
		if pass {
			if _, err := l.Pass(ctx, id, retry.Attempt{At: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := New(BuildInfo{})
	m.WatchLedger(l)
	for state, want := range map[string]float64{"deferred": 2, "passed": 1, "held": 0, "expired": 0, "released": 0} {
		if v := value(t, m, "wasmilter_ledger_records", "state", state); v != want {
			t.Errorf("records{state=%s} = %v, want %v", state, v, want)
		}
	}
	if v := value(t, m, "wasmilter_ledger_up"); v != 1 {
		t.Errorf("ledger_up = %v, want 1", v)
	}

	m2 := New(BuildInfo{})
	m2.WatchLedger(l)
	l.Close()
	if v := value(t, m2, "wasmilter_ledger_up"); v != 0 {
		t.Errorf("ledger_up of a closed ledger = %v, want 0", v)
	}
	if _, err := m2.Value("wasmilter_ledger_records", "state", "deferred"); err == nil {
		t.Error("a closed ledger still shows record counts")
	}
}

// TestTimeLedger: the pipeline's operations are timed; errors pass through.
func TestTimeLedger(t *testing.T) {
	m := New(BuildInfo{})
	l := m.TimeLedger(nopLedger{})
	if _, err := l.Get(context.Background(), stamp.Identity{}); !errors.Is(err, retry.ErrNotFound) {
		t.Fatalf("Get through the timer: %v", err)
	}
	if v := value(t, m, "wasmilter_ledger_operation_duration_seconds", "op", "get"); v != 1 {
		t.Errorf("timed gets = %v, want 1", v)
	}
}

// TestPluginsAndNotices: the scrape-time readers of the plugin host and the
// notifier show what they are handed.
func TestPluginsAndNotices(t *testing.T) {
	m := New(BuildInfo{})
	m.WatchPlugins(func() []PluginStats {
		return []PluginStats{{Name: "greylist", Instances: 2, Idle: 1, MaxInstances: 4,
			Failures: map[string]uint64{"trap": 3, "timeout": 0}, Replacements: 3}}
	})
	m.WatchNotices(func() NoticeStats { return NoticeStats{Sent: 5, Failed: 1, Expired: 2} })
	m.ObserveSweep(20*time.Millisecond, 7, nil)
	m.ObserveSweep(time.Millisecond, 0, errors.New("ledger down"))
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmilter_plugin_failures_total", []string{"plugin", "greylist", "kind", "trap"}, 3},
		{"wasmilter_plugin_failures_total", []string{"plugin", "greylist", "kind", "timeout"}, 0},
		{"wasmilter_plugin_instance_replacements_total", []string{"plugin", "greylist"}, 3},
		{"wasmilter_plugin_instances", []string{"plugin", "greylist"}, 2},
		{"wasmilter_notify_notices_total", []string{"outcome", "sent"}, 5},
		{"wasmilter_notify_notices_total", []string{"outcome", "failed"}, 1},
		{"wasmilter_notify_expired_total", nil, 2},
		{"wasmilter_notify_sweeps_total", []string{"result", "ok"}, 1},
		{"wasmilter_notify_sweeps_total", []string{"result", "error"}, 1},
		{"wasmilter_notify_sweep_visits_total", nil, 7},
		{"wasmilter_notify_sweep_duration_seconds", nil, 2},
	} {
		if v := value(t, m, tc.name, tc.labels...); v != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
}
