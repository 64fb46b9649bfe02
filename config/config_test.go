package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func TestDefaultsAreTheShippedFile(t *testing.T) {
	cfg, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Milter.Listen != "inet:127.0.0.1:8897" || cfg.Milter.ReadTimeout.Duration != 10*time.Minute ||
		cfg.Milter.MaxPacket != 1<<20 || cfg.Stamp.Header != "X-Wasmilter-Stamp" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if len(cfg.Plugins) != 1 || cfg.Plugins[0].Path != "builtin:stamp" {
		t.Fatalf("default plugins = %+v, want the builtin stamp", cfg.Plugins)
	}
	// The shipped stamp block spells out every per-plugin default; keep the
	// code's defaults and the file's comments in step.
	p := cfg.Plugins[0]
	if p.Timeout.Duration != DefaultPluginTimeout || p.Memory != DefaultPluginMemory || p.OnError != DefaultOnError {
		t.Fatalf("config.toml's stamp block %+v disagrees with the code's plugin defaults", p)
	}
	text := string(mustRead(t, "../config.toml"))
	for _, want := range []string{`(default "100ms")`, `(default "64MiB")`, `"tempfail" (default)`} {
		if !strings.Contains(text, want) {
			t.Errorf("config.toml no longer documents %s", want)
		}
	}
}

func TestEveryKeyIsWrittenInConfigToml(t *testing.T) {
	text := string(mustRead(t, "../config.toml"))
	pos := scanPositions(text)
	for table, keys := range map[string][]string{
		"milter": knownKeys([]string{"milter"}), "log": knownKeys([]string{"log"}), "limits": knownKeys([]string{"limits"}),
		"runtime": knownKeys([]string{"runtime"}), "stamp": knownKeys([]string{"stamp"}),
		"cache": knownKeys([]string{"cache"}), "retry": knownKeys([]string{"retry"}), "admin": knownKeys([]string{"admin"}),
		"plugins[0]": knownKeys([]string{"plugins"}),
		"notify":     knownKeys([]string{"notify"}), "notify.policy": knownKeys([]string{"notify", "policy"}),
	} {
		for _, k := range keys {
			if _, ok := pos[table+"."+k]; !ok {
				t.Errorf("config.toml does not write %s.%s with its default", table, k)
			}
		}
	}
}

func TestOverlayKeepsDefaults(t *testing.T) {
	cfg, err := Parse([]byte("[milter]\nlisten = \"unix:/run/wasmilter/milter.sock\"\n"), "test.toml", "/etc/wasmilter")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Milter.Listen != "unix:/run/wasmilter/milter.sock" || cfg.Milter.WriteTimeout.Duration != 30*time.Second {
		t.Fatalf("overlay: %+v", cfg.Milter)
	}
	if len(cfg.Plugins) != 1 {
		t.Fatalf("a file without [[plugins]] should keep the default plugins, got %+v", cfg.Plugins)
	}
	if got := cfg.Resolve("var/x"); got != filepath.Join("/etc/wasmilter", "var/x") {
		t.Fatalf("Resolve = %q", got)
	}
}

func TestPluginsReplaceDefaultsAndGetDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
[[plugins]]
name = "grey"
path = "grey.wasm"

[plugins.config]
min_delay = "5m"
allow.networks = ["192.0.2.0/24", "2001:db8::/32"]
count = 3
on = true

[[plugins]]
name = "stamp"
path = "builtin:stamp"
on_error = "continue"
`), "t.toml", ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Plugins) != 2 || cfg.Plugins[0].Name != "grey" || cfg.Plugins[1].OnError != "continue" {
		t.Fatalf("plugins = %+v", cfg.Plugins)
	}
	g := cfg.Plugins[0]
	if _, leaked := g.Config["remove_forged"]; leaked || g.MaxInstances != 0 {
		t.Fatalf("the default stamp block leaked into the user's first plugin: %+v", g)
	}
	if g.Timeout.Duration != DefaultPluginTimeout || g.Memory != DefaultPluginMemory || g.OnError != "tempfail" {
		t.Fatalf("per-plugin defaults not applied: %+v", g)
	}
	entries, err := FlattenPluginConfig(g.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := []abi.ConfigEntry{
		{Key: "allow.networks", Values: []string{"192.0.2.0/24", "2001:db8::/32"}},
		{Key: "count", Values: []string{"3"}},
		{Key: "min_delay", Values: []string{"5m"}},
		{Key: "on", Values: []string{"true"}},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Fatalf("flattened config:\n got %+v\nwant %+v", entries, want)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, toml string
		want       []string // substrings, one error each, in order
	}{
		{"unknown key", "[milter]\nlisten = \"inet:127.0.0.1:1\"\nlisten_addr = \"x\"\n",
			[]string{"f.toml:3: milter.listen_addr: unknown key (this table takes: listen, socket_mode"}},
		{"unknown table", "\n[milter]\n[metrics]\nport = 1\n", []string{"f.toml:3: metrics: unknown key", "f.toml:4: metrics.port: unknown key"}},
		{"typo in second plugin", "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\n[[plugins]]\nname = \"b\"\npath = \"b.wasm\"\non_eror = \"accept\"\n",
			[]string{"f.toml:7: plugins[1].on_eror: unknown key"}},
		{"bad duration", "[milter]\nread_timeout = \"ten minutes\"\n", []string{"f.toml:2: milter.read_timeout: \"ten minutes\" is not a duration"}},
		{"bad size", "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\nmemory = \"lots\"\n", []string{"f.toml:4:", "is not a size"}},
		{"syntax", "[milter\nlisten = 1\n", []string{"f.toml:2:", "to end table name"}},
		{"wrong type", "[milter]\nlisten = 8897\n", []string{"f.toml:2:", "listen"}},
		{"bad limits", "[limits]\nmax_headers = 0\nmax_header_bytes = \"1KiB\"\nmax_body_bytes = \"1KiB\"\non_limit = \"drop\"\n",
			[]string{"f.toml:2: limits.max_headers: 0: must be from 1", "f.toml:3: limits.max_header_bytes: 1KiB: must be from 16KiB",
				"f.toml:4: limits.max_body_bytes: 1KiB: must be at least 64KiB", "f.toml:5: limits.on_limit: \"drop\""}},
		{"unknown limit", "[limits]\nmax_bytes = 1\n",
			[]string{"f.toml:2: limits.max_bytes: unknown key (this table takes: max_headers, max_header_bytes, max_body_bytes, on_limit)"}},
		{"socket group on tcp", "[milter]\nlisten = \"inet:127.0.0.1:1\"\nsocket_group = \"postfix\"\n",
			[]string{"f.toml:3: milter.socket_group: applies only to a unix socket"}},
		{"bad values", `
[milter]
listen = "tcp:8897"
socket_mode = "rw"
[log]
level = "loud"
[stamp]
keys = ["short"]
[[plugins]]
name = "a b"
path = ""
timeout = "2m"
on_error = "ignore"
[[plugins]]
name = "x"
path = "builtin:"
`, []string{
			"f.toml:3: milter.listen: \"tcp:8897\"",
			"f.toml:4: milter.socket_mode:",
			"f.toml:6: log.level: \"loud\"",
			"f.toml:8: stamp.keys: key 1 is 5 bytes",
			"f.toml:10: plugins[0].name:",
			"f.toml:11: plugins[0].path: missing",
			"f.toml:12: plugins[0].timeout:",
			"f.toml:13: plugins[0].on_error: \"ignore\"",
			"f.toml:16: plugins[1].path: missing",
		}},
		{"duplicate names", "[[plugins]]\nname = \"a\"\npath = \"a.wasm\"\n[[plugins]]\nname = \"a\"\npath = \"b.wasm\"\n",
			[]string{"f.toml:5: plugins[1].name: \"a\": another plugin already has this name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.toml), "f.toml", ".")
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v (%T), want Errors", err, err)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain %q", msg, w)
				}
			}
			if c.name == "bad values" && len(errs) != len(c.want) {
				t.Errorf("%d errors, want %d:\n%s", len(errs), len(c.want), msg)
			}
		})
	}
}

func TestRetryCacheAdmin(t *testing.T) {
	cfg, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retry.MaxAge.Duration != 5*24*time.Hour || cfg.Retry.Store != "bolt:var/ledger.db" ||
		cfg.Cache.MaxEntries != 65536 || cfg.Cache.MaxBytes != 64<<20 || cfg.Admin.Listen != "127.0.0.1:8898" {
		t.Fatalf("defaults: %+v %+v %+v", cfg.Retry, cfg.Cache, cfg.Admin)
	}
	_, err = Parse([]byte(`
[retry]
store = "mysql://x"
on_store_error = "ignore"
expired_text = "a %s and %s"
[cache]
kv_share = 1.5
max_entries = 1
[admin]
listen = "0.0.0.0:8898"
`), "f.toml", ".")
	for _, want := range []string{"f.toml:3: retry.store:", "f.toml:4: retry.on_store_error:", "f.toml:5: retry.expired_text:",
		"f.toml:7: cache.kv_share:", "f.toml:8: cache.max_entries:", "f.toml:10: admin.listen:", "set admin.token"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Parse([]byte("[admin]\nlisten = \"0.0.0.0:8898\"\ntoken = \"s3cret\"\n"), "f.toml", "."); err != nil {
		t.Errorf("a non-loopback admin listener with a token: %v", err)
	}
	if _, err := Parse([]byte("[admin]\nlisten = \"\"\npprof = true\n"), "f.toml", "."); err == nil ||
		!strings.Contains(err.Error(), "f.toml:3: admin.pprof:") {
		t.Errorf("pprof without an admin listener: %v, want an error at admin.pprof", err)
	}
	for _, store := range []string{"redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380/2?dial_timeout=2s",
		"redis+sentinel://127.0.0.1:26379/0?master_name=ledger&addr=127.0.0.2:26379"} {
		cfg, err := Parse([]byte("[retry]\nstore = \""+store+"\"\n"), "f.toml", ".")
		if err != nil || !cfg.Retry.RedisStore() {
			t.Errorf("store %q: %v", store, err)
		}
	}
	_, err = Parse([]byte("[retry]\nstore = \"redis://\"\nredis_prefix = \"a{b}\"\n"), "f.toml", ".")
	for _, want := range []string{"f.toml:2: retry.store: not a Redis URL", "f.toml:3: retry.redis_prefix:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wasmilter.toml")
	if err := os.WriteFile(path, []byte("[runtime]\ncompilation_cache = \"cache\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Resolve(cfg.Runtime.CompilationCache); got != filepath.Join(dir, "cache") {
		t.Fatalf("compilation cache resolves to %q", got)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDurationDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"5d": 120 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || d.Duration != want {
			t.Errorf("Duration(%q) = %v, %v", in, d.Duration, err)
		}
	}
	for _, bad := range []string{"d", "xd", "1d-1h", "-1d"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Duration(%q) accepted", bad)
		}
	}
	if (Duration{120 * time.Hour}).String() != "5d" || (Duration{90 * time.Minute}).String() != "1h30m0s" {
		t.Error("Duration.String")
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]Size{"64MiB": 64 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "100": 100, "7B": 7} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("Size(%q) = %d, %v", in, s, err)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1.5MiB", "64MB"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Size(%q) accepted", bad)
		}
	}
	if Size(64<<20).String() != "64MiB" || Size(1500).String() != "1500B" {
		t.Error("Size.String")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNotify(t *testing.T) {
	cfg, err := Defaults()
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if !n.Enabled || n.SMTP != "127.0.0.1:25" || n.Policy.Path != "builtin:delaynotify" || n.RateLimit != 10 ||
		n.Lease.Duration != 5*time.Minute || n.Policy.Config["notify_after"] == nil {
		t.Fatalf("notify defaults: %+v", n)
	}

	// Keys for the builtin merge with its defaults.
	cfg, err = Parse([]byte("[notify.policy.config]\nlocal_domains = [\"example.org\"]\n"), "t.toml", "/")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Notify.Policy.Config; c["notify_after"] == nil || c["local_domains"] == nil {
		t.Errorf("builtin policy config did not merge: %v", c)
	}
	// Another policy starts from an empty config.
	cfg, err = Parse([]byte("[notify.policy]\npath = \"mine.wasm\"\n[notify.policy.config]\nx = 1\n"), "t.toml", "/")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Notify.Policy.Config; len(c) != 1 || c["x"] == nil {
		t.Errorf("another policy got the builtin's config: %v", c)
	}

	for _, tc := range []struct{ toml, key string }{
		{"[notify]\nsmtp = \"localhost\"\n", "notify.smtp"},
		{"[notify]\nlease = \"20s\"\n", "notify.lease"},
		{"[notify]\nrate_limit = -1\n", "notify.rate_limit"},
		{"[notify]\nhostname = \"bad host\"\n", "notify.hostname"},
		{"[notify]\nnode = \"mx 1\"\n", "notify.node"},
		{"[notify]\nsweep_interval = \"0s\"\n", "notify.sweep_interval"},
		{"[notify.policy]\non_error = \"accept\"\n", "notify.policy.on_error"},
		{"[notify.policy]\npath = \"builtin:\"\n", "notify.policy.path"},
	} {
		_, err := Parse([]byte(tc.toml), "t.toml", "/")
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 || errs[0].Key != tc.key || errs[0].Line == 0 {
			t.Errorf("%q: %v, want an error at %s with its line", tc.toml, err, tc.key)
		}
	}
}
