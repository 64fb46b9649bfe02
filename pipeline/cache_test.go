package pipeline

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
)

// TestPropertiesAreParsedOnceAndReachPlugins: the hostecho guest reads the
// properties and the key/value store through the host; the property cache
// serves the second pass of the same message from its entry.
func TestPropertiesAreParsedOnceAndReachPlugins(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New(cache.Config{MaxEntries: 100, MaxBytes: 4 << 20, TTL: time.Hour, KVShare: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	host, err := plugins.NewHost(ctx, plugins.HostConfig{KV: c, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	p, err := host.Load(ctx, plugins.Spec{Name: "hostecho", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/hostecho"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pl := New(Options{Chain: plugins.NewChain(p), Stamps: unsignedCodec, Cache: c, Clock: func() time.Time { return fixedNow },
		Logger: slog.New(slog.DiscardHandler)})

	m := msg{from: "alice@example.org", rcpts: []string{"bob@example.net"}, headers: [][2]string{
		{"From", "Alice <alice@example.org>"}, {"Subject", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?="},
		{"Received", "from a by b"}, {"Received", "from b by c"}, {"Message-ID", "<props@example.org>"}}}
	for pass := 1; pass <= 2; pass++ {
		s := pl.NewOfflineSession(macros{"i": "Q1"})
		reply, mods := m.send(t, s)
		s.Close()
		if reply.Action != milter.Continue {
			t.Fatalf("pass %d: %+v", pass, reply)
		}
		if v, _ := header(mods, "X-Props"); v != "Grüße|2|false" {
			t.Errorf("pass %d: the plugin saw properties %q, want the decoded subject and 2 hops", pass, v)
		}
		if v, _ := header(mods, "X-Counter"); v != map[int]string{1: "1 <nil>", 2: "2 <nil>"}[pass] {
			t.Errorf("pass %d: counter %q: the key/value store is not the cache's, or not shared", pass, v)
		}
	}
	st := c.Stats()
	if st.Properties.Hits != 1 || st.Properties.Misses != 1 || st.Properties.Entries != 1 {
		t.Errorf("cache after two passes of one message: %+v, want 1 miss then 1 hit", st.Properties)
	}
	if st.KV.Entries != 2 {
		t.Errorf("KV entries %d, want the counter and the last queue ID", st.KV.Entries)
	}
}
