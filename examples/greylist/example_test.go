package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// loadGreylist builds the example and loads it through the plugin host the
// way the server does, on a fixed clock.
func loadGreylist(t *testing.T, config ...abi.ConfigEntry) *plugins.Chain {
	t.Helper()
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Logger: slog.New(slog.DiscardHandler),
		Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(ctx) })
	p, err := host.Load(ctx, plugins.Spec{Name: "greylist", Source: "examples/greylist",
		Wasm: wasmtest.BuildGo(t, "./examples/greylist"), Config: config})
	if err != nil {
		t.Fatal(err)
	}
	return plugins.NewChain(p)
}

func event(clientIP, from string) *abi.Event {
	return &abi.Event{ClientAddr: clientIP, Family: "inet", From: from,
		Rcpts:   []abi.Recipient{{Addr: "bob@example.net"}},
		Headers: []abi.Header{{Name: "Message-ID", Value: "<1@example.org>"}}}
}

func record(state string, firstSeen time.Time) *abi.Record {
	return &abi.Record{ID: "id", State: state, FirstSeen: firstSeen.Unix(), Attempts: 1}
}

func TestGreylistByMessageIdentity(t *testing.T) {
	chain := loadGreylist(t,
		abi.ConfigEntry{Key: "min_delay", Values: []string{"5m"}},
		abi.ConfigEntry{Key: "allow.networks", Values: []string{"192.0.2.0/24", "2001:db8::/32"}},
		abi.ConfigEntry{Key: "allow.sender_domains", Values: []string{"Partner.Example"}})
	cases := []struct {
		name     string
		clientIP string
		from     string
		record   *abi.Record
		want     abi.Verdict
	}{
		{"unknown message is deferred", "198.51.100.1", "a@example.org", nil, abi.TempFail},
		{"retry too soon is deferred again", "198.51.100.1", "a@example.org", record("deferred", now.Add(-2*time.Minute)), abi.TempFail},
		{"retry after min_delay passes", "198.51.100.1", "a@example.org", record("deferred", now.Add(-6*time.Minute)), abi.Continue},
		// The point of keying on the message: another address of the
		// sender's pool finds the same record and passes.
		{"retry from another pool address passes", "203.0.113.77", "a@example.org", record("deferred", now.Add(-6*time.Minute)), abi.Continue},
		{"released by the admin passes at once", "198.51.100.1", "a@example.org", record("released", now.Add(-time.Minute)), abi.Continue},
		{"allowed network", "192.0.2.9", "a@example.org", nil, abi.Continue},
		{"allowed network, IPv6", "2001:db8::25", "a@example.org", nil, abi.Continue},
		{"allowed sender domain", "198.51.100.1", "news@partner.example", nil, abi.Continue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := chain.Run(context.Background(), abi.HookHeaders, event(c.clientIP, c.from), wasmtest.Env{MsgRecord: c.record})
			if len(res.Failures) != 0 {
				t.Fatalf("failures: %v", res.Failures)
			}
			if res.Verdict != c.want {
				t.Fatalf("verdict %v, want %v", res.Verdict, c.want)
			}
			if c.want == abi.TempFail && (res.Reply.Code != 451 || res.Reply.Enhanced != "4.7.1" || res.Reply.Text == "") {
				t.Errorf("deferral reply %+v, want 451 4.7.1 with a helpful text", res.Reply)
			}
		})
	}
}

func TestGreylistRefusesABadNetwork(t *testing.T) {
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	_, err = host.Load(ctx, plugins.Spec{Name: "greylist", Wasm: wasmtest.BuildGo(t, "./examples/greylist"),
		Config: []abi.ConfigEntry{{Key: "allow.networks", Values: []string{"not-a-network"}}}})
	if err == nil {
		t.Fatal("a config with a malformed network loaded")
	}
}
