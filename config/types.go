package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the whole of config.toml.
type Config struct {
	Milter  Milter   `toml:"milter"`
	Limits  Limits   `toml:"limits"`
	Log     Log      `toml:"log"`
	Runtime Runtime  `toml:"runtime"`
	Stamp   Stamp    `toml:"stamp"`
	Cache   Cache    `toml:"cache"`
	Retry   Retry    `toml:"retry"`
	Admin   Admin    `toml:"admin"`
	Notify  Notify   `toml:"notify"`
	Plugins []Plugin `toml:"plugins"`

	// Source names where the config came from, for messages: a file path,
	// or "built-in defaults".
	Source string `toml:"-"`
	// Dir is the directory relative paths are resolved against: the config
	// file's directory, or the working directory for the built-in defaults.
	Dir string `toml:"-"`

	pos positions // where each key was written, for errors found after loading
}

// Errorf returns an error about key located at the line that set it (or
// the line of its table), for problems found after loading: a plugin file
// that cannot be read, a module that does not compile.
func (c *Config) Errorf(key, format string, args ...any) *Error {
	return &Error{File: c.Source, Line: c.pos.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Milter is the [milter] table: how the MTA reaches wasmilter.
type Milter struct {
	Listen          string   `toml:"listen"`
	SocketMode      string   `toml:"socket_mode"`
	SocketOwner     string   `toml:"socket_owner"`
	SocketGroup     string   `toml:"socket_group"`
	ReadTimeout     Duration `toml:"read_timeout"`
	WriteTimeout    Duration `toml:"write_timeout"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	MaxPacket       Size     `toml:"max_packet"`
}

// Log is the [log] table.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Runtime is the [runtime] table: the Wasm runtime shared by all plugins.
type Runtime struct {
	CompilationCache string `toml:"compilation_cache"`
}

// Stamp is the [stamp] table: how stamps are written and verified.
type Stamp struct {
	Header string   `toml:"header"`
	Keys   []string `toml:"keys"`
}

// Cache is the [cache] table: the header property cache and the plugins'
// key/value store.
type Cache struct {
	MaxEntries int      `toml:"max_entries"`
	MaxBytes   Size     `toml:"max_bytes"`
	TTL        Duration `toml:"ttl"`
	KVShare    float64  `toml:"kv_share"`
}

// Retry is the [retry] table: the ledger of deferred messages.
type Retry struct {
	Store        string   `toml:"store"`
	RedisPrefix  string   `toml:"redis_prefix"`
	MaxAge       Duration `toml:"max_age"`
	KeepPassed   Duration `toml:"keep_passed"`
	ExpiredText  string   `toml:"expired_text"`
	OnStoreError string   `toml:"on_store_error"`
}

// Admin is the [admin] table: the HTTP API the CLI's cache and queue
// commands talk to.
type Admin struct {
	Listen string `toml:"listen"`
	Token  string `toml:"token"`
	// Pprof serves Go's profiler (net/http/pprof) under /debug/pprof/,
	// behind the token like every other route. Off by default: a profile
	// shows what the process holds, mail included.
	Pprof bool `toml:"pprof"`
}

// Notify is the [notify] table: delay notifications to senders whose mail
// waits in the retry ledger.
type Notify struct {
	Enabled       bool         `toml:"enabled"`
	SweepInterval Duration     `toml:"sweep_interval"`
	SMTP          string       `toml:"smtp"`
	StartTLS      bool         `toml:"starttls"`
	Timeout       Duration     `toml:"timeout"`
	Hostname      string       `toml:"hostname"`
	From          string       `toml:"from"`
	Node          string       `toml:"node"`
	Lease         Duration     `toml:"lease"`
	RetryAfter    Duration     `toml:"retry_after"`
	RateLimit     int          `toml:"rate_limit"`
	RateWindow    Duration     `toml:"rate_window"`
	Cleared       bool         `toml:"cleared"`
	Policy        NotifyPolicy `toml:"policy"`
}

// NotifyPolicy is the [notify.policy] table: the delay-notification policy
// plugin. It has no on_error: a failed call decides nothing about any
// message, and the next sweep asks again.
type NotifyPolicy struct {
	Name         string         `toml:"name"`
	Path         string         `toml:"path"`
	Timeout      Duration       `toml:"timeout"`
	Memory       Size           `toml:"memory"`
	MaxInstances int            `toml:"max_instances"`
	Config       map[string]any `toml:"config"`
}

// Builtin returns the builtin's name when the policy's path names one.
func (p *NotifyPolicy) Builtin() (string, bool) {
	name, ok := strings.CutPrefix(p.Path, BuiltinPrefix)
	return name, ok
}

// Plugin is one [[plugins]] block.
type Plugin struct {
	Name         string         `toml:"name"`
	Path         string         `toml:"path"`
	Timeout      Duration       `toml:"timeout"`
	Memory       Size           `toml:"memory"`
	OnError      string         `toml:"on_error"`
	MaxInstances int            `toml:"max_instances"`
	Config       map[string]any `toml:"config"`
}

// Defaults for keys a [[plugins]] block leaves out. They are written in
// config.toml's comments too; a test keeps the two in step.
const (
	DefaultPluginTimeout = 100 * time.Millisecond
	DefaultPluginMemory  = Size(64 << 20)
	DefaultOnError       = "tempfail"
)

// BuiltinPrefix marks a plugin shipped inside the binary: "builtin:stamp".
const BuiltinPrefix = "builtin:"

// Builtin returns the builtin's name when the plugin's path names one.
func (p *Plugin) Builtin() (string, bool) {
	name, ok := strings.CutPrefix(p.Path, BuiltinPrefix)
	return name, ok
}

// Duration is a time.Duration written as a Go duration string ("100ms", "4h").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
// Besides Go's units it takes whole days ("5d", "1d12h"): retry ages are
// thought of in days.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. \"100ms\", \"30s\", \"4h\", \"5d\")", b)
	}
	d.Duration = v
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, err
	}
	total := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += r
	}
	return total, nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String writes whole days as days ("5d"), the rest as Go does.
func (d Duration) String() string {
	const day = 24 * time.Hour
	if d.Duration >= day && d.Duration%day == 0 {
		return strconv.FormatInt(int64(d.Duration/day), 10) + "d"
	}
	return d.Duration.String()
}

// Size is a byte count written with a binary unit ("64MiB", "512KiB") or as
// a plain number of bytes.
type Size uint64

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (s *Size) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	mult := uint64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(text, u.suffix); ok {
			text, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size (use e.g. \"64MiB\", \"512KiB\", \"1GiB\")", b)
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String renders the size with the largest unit that divides it.
func (s Size) String() string {
	for _, u := range sizeUnits {
		if uint64(s) >= u.mult && uint64(s)%u.mult == 0 {
			return strconv.FormatUint(uint64(s)/u.mult, 10) + u.suffix
		}
	}
	return "0B"
}
