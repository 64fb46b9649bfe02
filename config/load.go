package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/wasmilter/wasmilter"
)

// DefaultsSource is how errors name the embedded defaults.
const DefaultsSource = "built-in defaults"

// Defaults returns the built-in defaults: the embedded config.toml.
func Defaults() (*Config, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	cfg := &Config{}
	if err := decodeInto(cfg, wasmilter.DefaultConfig, DefaultsSource); err != nil {
		return nil, fmt.Errorf("the embedded default config is broken (a build problem): %w", err)
	}
	cfg.Source, cfg.Dir, cfg.pos = DefaultsSource, wd, scanPositions(string(wasmilter.DefaultConfig))
	if err := cfg.validate(cfg.pos); err != nil {
		return nil, fmt.Errorf("the embedded default config is broken (a build problem): %w", err)
	}
	return cfg, nil
}

// Load reads the file at path on top of the built-in defaults. Relative
// paths inside it are resolved against the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, filepath.Dir(abs))
}

// Parse decodes data on top of the built-in defaults. source names the data
// in errors; dir resolves relative paths. The error, if any, is an [Errors]
// listing every problem found.
func Parse(data []byte, source, dir string) (*Config, error) {
	cfg, err := Defaults()
	if err != nil {
		return nil, err
	}
	defines := probe(data)
	if _, ok := defines["plugins"]; ok {
		// A file's [[plugins]] replace the default list: the TOML library
		// would decode them into the default elements and leak their
		// fields (a stamp block's [plugins.config]) into the user's plugins.
		cfg.Plugins = nil
	}
	if setsPolicyPath(defines) {
		// Another delay policy: the builtin's [notify.policy.config] is
		// not its config. Keys given for the builtin itself still merge
		// with its defaults.
		cfg.Notify.Policy.Config = nil
	}
	if err := decodeInto(cfg, data, source); err != nil {
		return nil, err
	}
	cfg.Source, cfg.Dir, cfg.pos = source, dir, scanPositions(string(data))
	if err := cfg.validate(cfg.pos); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeInto decodes TOML over the values already in cfg and reports
// syntax errors, type errors and unknown keys with their lines.
func decodeInto(cfg *Config, data []byte, source string) error {
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return Errors{syntaxError(err, source)}
	}
	pos := scanPositions(string(data))
	var errs Errors
	claimed := map[int]bool{}
	for _, k := range md.Undecoded() {
		key := k.String()
		if isFreeForm(k) {
			continue
		}
		indexed, line := pos.findUnindexed(key, claimed)
		claimed[line] = true
		errs = append(errs, &Error{File: source, Line: line, Key: indexed, Msg: unknownKeyMsg(k)})
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return errs
	}
	return nil
}

// probe decodes a TOML document loosely, to see which keys it sets. A
// document that does not parse sets nothing; decodeInto reports its error.
func probe(data []byte) map[string]any {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil
	}
	return doc
}

// setsPolicyPath reports whether a probed document sets notify.policy.path.
func setsPolicyPath(doc map[string]any) bool {
	n, _ := doc["notify"].(map[string]any)
	p, _ := n["policy"].(map[string]any)
	_, ok := p["path"]
	return ok
}

// isFreeForm reports keys under a plugin's [plugins.config] table: those
// belong to the plugin, which validates them itself in wasmilter_init. The
// TOML library reports nested keys there as undecoded although the map
// holds them.
func isFreeForm(k toml.Key) bool {
	return (len(k) >= 3 && k[0] == "plugins" && k[1] == "config") ||
		(len(k) >= 4 && k[0] == "notify" && k[1] == "policy" && k[2] == "config")
}

func syntaxError(err error, source string) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: source, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
	}
	// Type mismatches come as plain errors: `toml: line 2 (last key "x"): ...`.
	if m := typeErrorText.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: source, Line: line, Key: m[2], Msg: m[3]}
	}
	return &Error{File: source, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

var typeErrorText = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// unknownKeyMsg says which keys the table does take, so a typo is obvious.
func unknownKeyMsg(k toml.Key) string {
	known := knownKeys(k[:len(k)-1])
	if len(known) == 0 {
		return "unknown key"
	}
	return "unknown key (this table takes: " + strings.Join(known, ", ") + ")"
}

// knownKeys lists the keys a table path accepts.
func knownKeys(table toml.Key) []string {
	fields := map[string][]string{
		"":        {"milter", "limits", "log", "runtime", "stamp", "cache", "retry", "admin", "notify", "plugins"},
		"milter":  {"listen", "socket_mode", "socket_owner", "socket_group", "read_timeout", "write_timeout", "shutdown_timeout", "max_packet"},
		"limits":  {"max_headers", "max_header_bytes", "max_body_bytes", "on_limit"},
		"log":     {"level", "format"},
		"runtime": {"compilation_cache"},
		"stamp":   {"header", "keys"},
		"cache":   {"max_entries", "max_bytes", "ttl", "kv_share"},
		"retry":   {"store", "redis_prefix", "max_age", "keep_passed", "expired_text", "on_store_error"},
		"admin":   {"listen", "token", "pprof"},
		"notify": {"enabled", "sweep_interval", "smtp", "starttls", "timeout", "hostname", "from", "node",
			"lease", "retry_after", "rate_limit", "rate_window", "cleared", "policy"},
		"notify.policy": {"name", "path", "timeout", "memory", "max_instances", "config"},
		"plugins":       {"name", "path", "timeout", "memory", "on_error", "max_instances", "config"},
	}
	keys := fields[table.String()]
	return slices.Clone(keys)
}

func sortErrors(errs Errors) {
	slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
}

// Resolve makes a path from the config absolute, relative to its Dir.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}
