package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// validator collects errors with their lines.
type validator struct {
	source string
	pos    positions
	errs   Errors
}

func (v *validator) fail(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.source, Line: v.pos.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// validate checks values that are well-typed but wrong and fills in the
// per-plugin defaults.
func (c *Config) validate(pos positions) error {
	v := &validator{source: c.Source, pos: pos}
	c.validateMilter(v)
	c.validateLimits(v)
	c.validateLog(v)
	c.validateStamp(v)
	c.validateCache(v)
	c.validateRetry(v)
	c.validateAdmin(v)
	c.validateNotify(v)
	c.validatePlugins(v)
	if len(v.errs) > 0 {
		sortErrors(v.errs)
		return v.errs
	}
	return nil
}

var listenSchemes = []string{"inet:", "inet6:", "unix:", "local:"}

func (c *Config) validateMilter(v *validator) {
	m := &c.Milter
	if !hasAnyPrefix(m.Listen, listenSchemes) {
		v.fail("milter.listen", "%q: want inet:HOST:PORT, inet:PORT@HOST, inet6:PORT@HOST or unix:/PATH", m.Listen)
	}
	if _, err := m.Mode(); err != nil {
		v.fail("milter.socket_mode", "%v", err)
	}
	if (m.SocketOwner != "" || m.SocketGroup != "") && !hasAnyPrefix(m.Listen, []string{"unix:", "local:"}) {
		key := "milter.socket_owner"
		if m.SocketOwner == "" {
			key = "milter.socket_group"
		}
		v.fail(key, "applies only to a unix socket, and listen is %q", m.Listen)
	}
	positive(v, "milter.read_timeout", m.ReadTimeout)
	positive(v, "milter.write_timeout", m.WriteTimeout)
	positive(v, "milter.shutdown_timeout", m.ShutdownTimeout)
	if m.MaxPacket < 64<<10 || m.MaxPacket > 64<<20 {
		v.fail("milter.max_packet", "%s: must be from 64KiB (the MTA's body chunk) to 64MiB", m.MaxPacket)
	}
}

// Mode parses socket_mode as octal permissions.
func (m *Milter) Mode() (uint32, error) {
	n, err := strconv.ParseUint(m.SocketMode, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode like \"0660\"", m.SocketMode)
	}
	return uint32(n), nil
}

func positive(v *validator, key string, d Duration) {
	if d.Duration <= 0 {
		v.fail(key, "must be a positive duration, got %q", d.String())
	}
}

func (c *Config) validateLog(v *validator) {
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		v.fail("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		v.fail("log.format", "%q: want text or json", c.Log.Format)
	}
}

func (c *Config) validateStamp(v *validator) {
	if err := validHeaderName(c.Stamp.Header); err != nil {
		v.fail("stamp.header", "%v", err)
	}
	if _, err := c.StampKeys(); err != nil {
		v.fail("stamp.keys", "%v", err)
	}
}

// StampKeys decodes the configured stamp keys.
func (c *Config) StampKeys() ([][]byte, error) {
	keys := make([][]byte, 0, len(c.Stamp.Keys))
	for i, s := range c.Stamp.Keys {
		k, err := stamp.ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("key %d: %v", i+1, err)
		}
		if len(k) < 16 {
			return nil, fmt.Errorf("key %d is %d bytes; use at least 16 random bytes", i+1, len(k))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (c *Config) validateCache(v *validator) {
	k := &c.Cache
	if k.MaxEntries < 16 || k.MaxEntries > 1<<24 {
		v.fail("cache.max_entries", "%d: must be from 16 to 16777216", k.MaxEntries)
	}
	if k.MaxBytes < 1<<20 || k.MaxBytes > 16<<30 {
		v.fail("cache.max_bytes", "%s: must be from 1MiB to 16GiB", k.MaxBytes)
	}
	positive(v, "cache.ttl", k.TTL)
	if k.KVShare < 0 || k.KVShare > 0.9 {
		v.fail("cache.kv_share", "%g: must be from 0 (no key/value store) to 0.9", k.KVShare)
	}
}

// The prefixes of [retry] store.
const (
	RetryStoreBolt          = "bolt:"
	RetryStoreRedis         = "redis://"
	RetryStoreRedisTLS      = "rediss://"
	RetryStoreRedisSentinel = "redis+sentinel://"
)

// RedisStore reports whether the store is a Redis URL.
func (r *Retry) RedisStore() bool {
	return hasAnyPrefix(r.Store, []string{RetryStoreRedis, RetryStoreRedisTLS, RetryStoreRedisSentinel})
}

func (c *Config) validateRetry(v *validator) {
	r := &c.Retry
	switch {
	case strings.HasPrefix(r.Store, RetryStoreBolt) && len(r.Store) > len(RetryStoreBolt):
	case r.RedisStore():
		if u, err := url.Parse(r.Store); err != nil || u.Host == "" {
			v.fail("retry.store", "not a Redis URL: want redis://[:PASSWORD@]HOST:PORT/DB, rediss://... or redis+sentinel://HOST:PORT/DB?master_name=NAME")
		}
	case r.Store == "":
		// No ledger: deferrals are not remembered (documented in config.toml).
	default:
		v.fail("retry.store", "%q: want \"bolt:PATH\", \"redis://HOST:PORT/DB\", \"rediss://...\", \"redis+sentinel://...\" or \"\" (no ledger)", r.Store)
	}
	if strings.ContainsAny(r.RedisPrefix, "{} \t\r\n") || r.RedisPrefix == "" {
		v.fail("retry.redis_prefix", "%q: a non-empty key prefix without braces or spaces", r.RedisPrefix)
	}
	positive(v, "retry.max_age", r.MaxAge)
	positive(v, "retry.keep_passed", r.KeepPassed)
	if strings.Count(r.ExpiredText, "%s") > 1 || strings.ContainsAny(r.ExpiredText, "\r\n") {
		v.fail("retry.expired_text", "one line, with at most one %%s (the maximum age)")
	}
	if !oneOf(r.OnStoreError, "tempfail", "accept") {
		v.fail("retry.on_store_error", "%q: want tempfail or accept", r.OnStoreError)
	}
}

func (c *Config) validateAdmin(v *validator) {
	if c.Admin.Listen == "" {
		if c.Admin.Pprof {
			v.fail("admin.pprof", "the profiler is served on the admin API: set admin.listen")
		}
		return
	}
	host, _, err := net.SplitHostPort(c.Admin.Listen)
	if err != nil {
		v.fail("admin.listen", "%q: want HOST:PORT, or \"\" to turn the admin API off", c.Admin.Listen)
		return
	}
	ip, err := netip.ParseAddr(host)
	if host != "localhost" && (err != nil || !ip.IsLoopback()) && c.Admin.Token == "" {
		v.fail("admin.listen", "%q is not a loopback address: set admin.token so that not everyone who can reach it can flush caches and release mail", c.Admin.Listen)
	}
}

var pluginName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func (c *Config) validatePlugins(v *validator) {
	seen := map[string]bool{}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		key := func(k string) string { return fmt.Sprintf("plugins[%d].%s", i, k) }
		applyPluginDefaults(p)
		switch {
		case !pluginName.MatchString(p.Name):
			v.fail(key("name"), "%q: a name is 1-63 letters, digits, '_', '.' or '-'", p.Name)
		case seen[p.Name]:
			v.fail(key("name"), "%q: another plugin already has this name", p.Name)
		}
		seen[p.Name] = true
		if name, ok := p.Builtin(); p.Path == "" || (ok && name == "") {
			v.fail(key("path"), "missing: give a .wasm file or builtin:NAME")
		}
		if p.Timeout.Duration <= 0 || p.Timeout.Duration > time.Minute {
			v.fail(key("timeout"), "%s: must be more than 0 and at most 1m", p.Timeout)
		}
		if p.Memory < 1<<20 || p.Memory > 4<<30 {
			v.fail(key("memory"), "%s: must be from 1MiB to 4GiB", p.Memory)
		}
		if !oneOf(p.OnError, "tempfail", "accept", "reject", "continue") {
			v.fail(key("on_error"), "%q: want tempfail, accept, reject or continue", p.OnError)
		}
		if p.MaxInstances < 0 || p.MaxInstances > 1024 {
			v.fail(key("max_instances"), "%d: must be from 0 (automatic) to 1024", p.MaxInstances)
		}
		if _, err := FlattenPluginConfig(p.Config); err != nil {
			v.fail(key("config"), "%v", err)
		}
	}
}

func (c *Config) validateNotify(v *validator) {
	n := &c.Notify
	positive(v, "notify.sweep_interval", n.SweepInterval)
	if host, port, err := net.SplitHostPort(n.SMTP); err != nil || host == "" || port == "" {
		v.fail("notify.smtp", "%q: want HOST:PORT of the MTA that takes the notices, e.g. \"127.0.0.1:25\"", n.SMTP)
	}
	positive(v, "notify.timeout", n.Timeout)
	if n.Hostname != "" && !hostName.MatchString(n.Hostname) {
		v.fail("notify.hostname", "%q: want a host name like mx.example.org, or \"\" for the system's", n.Hostname)
	}
	if strings.ContainsAny(n.From, "\r\n\x00") {
		v.fail("notify.from", "one line: a header value")
	}
	if n.Node != "" && (len(n.Node) > 255 || strings.ContainsFunc(n.Node, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		v.fail("notify.node", "%q: 1 to 255 bytes, no spaces or control characters", n.Node)
	}
	if n.Lease.Duration <= 30*time.Second {
		v.fail("notify.lease", "%s: must be more than 30s (a send ends 10s before its lease)", n.Lease)
	}
	positive(v, "notify.retry_after", n.RetryAfter)
	if n.RateLimit < 0 {
		v.fail("notify.rate_limit", "%d: want 0 (no limit) or more", n.RateLimit)
	}
	positive(v, "notify.rate_window", n.RateWindow)
	p := &n.Policy
	if !pluginName.MatchString(p.Name) {
		v.fail("notify.policy.name", "%q: a name is 1-63 letters, digits, '_', '.' or '-'", p.Name)
	}
	if name, ok := p.Builtin(); ok && name == "" {
		v.fail("notify.policy.path", "missing the builtin's name: builtin:NAME")
	}
	if p.Timeout.Duration <= 0 || p.Timeout.Duration > time.Minute {
		v.fail("notify.policy.timeout", "%s: must be more than 0 and at most 1m", p.Timeout)
	}
	if p.Memory < 1<<20 || p.Memory > 4<<30 {
		v.fail("notify.policy.memory", "%s: must be from 1MiB to 4GiB", p.Memory)
	}
	if p.MaxInstances < 0 || p.MaxInstances > 1024 {
		v.fail("notify.policy.max_instances", "%d: must be from 0 (automatic) to 1024", p.MaxInstances)
	}
	if _, err := FlattenPluginConfig(p.Config); err != nil {
		v.fail("notify.policy.config", "%v", err)
	}
}

// hostName is a DNS host name: labels of letters, digits and hyphens.
var hostName = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func applyPluginDefaults(p *Plugin) {
	if p.Timeout.Duration == 0 {
		p.Timeout.Duration = DefaultPluginTimeout
	}
	if p.Memory == 0 {
		p.Memory = DefaultPluginMemory
	}
	if p.OnError == "" {
		p.OnError = DefaultOnError
	}
}

// validHeaderName checks an RFC 5322 field name.
func validHeaderName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%q: a header name is 1 to 128 characters", name)
	}
	for _, r := range name {
		if r < 33 || r > 126 || r == ':' {
			return fmt.Errorf("%q: a header name is printable ASCII without ':' or spaces", name)
		}
	}
	return nil
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
