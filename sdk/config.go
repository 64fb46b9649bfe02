package sdk

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Config is the plugin's [plugins.config] table as the host passed it to
// Init. Nested tables are flattened to dotted keys ("allow.networks").
//
// The getters take a default for an absent key and never fail loudly: a
// value that does not parse is recorded, the default returned, and after
// Init the SDK refuses to start the plugin with every such problem listed.
// So Init can read its settings in a row without checking each one.
type Config struct {
	c *configState
}

type configState struct {
	values map[string][]string
	order  []string // keys in the order the host sent them
	read   map[string]bool
	errs   []error
}

// newConfig builds a Config from decoded entries. A key given twice keeps
// its last value, as a later assignment would.
func newConfig(entries []abi.ConfigEntry) Config {
	st := &configState{values: make(map[string][]string, len(entries)), read: map[string]bool{}}
	for _, e := range entries {
		if _, dup := st.values[e.Key]; !dup {
			st.order = append(st.order, e.Key)
		}
		st.values[e.Key] = e.Values
	}
	return Config{c: st}
}

// NewConfig builds a Config from key/values pairs, for testing a plugin's
// Init without a host.
func NewConfig(values map[string][]string) Config {
	entries := make([]abi.ConfigEntry, 0, len(values))
	for k, v := range values {
		entries = append(entries, abi.ConfigEntry{Key: k, Values: v})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	return newConfig(entries)
}

func (c Config) state() *configState {
	if c.c == nil { // the zero Config is an empty one
		return &configState{}
	}
	return c.c
}

// Keys returns every key in the order the host sent them.
func (c Config) Keys() []string { return append([]string(nil), c.state().order...) }

// Has reports whether key is set.
func (c Config) Has(key string) bool {
	_, ok := c.state().values[key]
	return ok
}

// Strings returns every value of key (a scalar gives one), or def when the
// key is absent.
func (c Config) Strings(key string, def []string) []string {
	vs, ok := c.lookup(key)
	if !ok {
		return def
	}
	return append([]string(nil), vs...)
}

// String returns the value of key, or def when the key is absent.
func (c Config) String(key, def string) string {
	v, ok := c.single(key)
	if !ok {
		return def
	}
	return v
}

// Int returns the integer value of key, or def when the key is absent or
// malformed (which is reported).
func (c Config) Int(key string, def int) int {
	v, ok := c.single(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		c.fail(key, "%q is not an integer", v)
		return def
	}
	return n
}

// Bool returns the boolean value of key ("true" or "false"), or def when the
// key is absent or malformed (which is reported).
func (c Config) Bool(key string, def bool) bool {
	v, ok := c.single(key)
	if !ok {
		return def
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	c.fail(key, "%q is not true or false", v)
	return def
}

// Duration returns the value of key as a Go duration ("30s", "4h", "1h30m"),
// or def when the key is absent or malformed (which is reported). A bare
// number is refused rather than guessed to be seconds.
func (c Config) Duration(key string, def time.Duration) time.Duration {
	v, ok := c.single(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		c.fail(key, "%q is not a duration such as \"30s\" or \"4h\"", v)
		return def
	}
	return d
}

// Err returns every problem the getters met so far, nil when there was none.
func (c Config) Err() error { return errors.Join(c.state().errs...) }

// Unread returns the keys no getter asked for: usually typos in the config.
func (c Config) Unread() []string {
	st := c.state()
	var out []string
	for _, k := range st.order {
		if !st.read[k] {
			out = append(out, k)
		}
	}
	return out
}

func (c Config) lookup(key string) ([]string, bool) {
	st := c.state()
	vs, ok := st.values[key]
	if ok {
		st.read[key] = true
	}
	return vs, ok
}

// single returns the one value of a scalar key; an array is reported.
func (c Config) single(key string) (string, bool) {
	vs, ok := c.lookup(key)
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		c.fail(key, "want a single value, got a list of %d", len(vs))
		return "", false
	}
	return vs[0], true
}

func (c Config) fail(key, format string, args ...any) {
	st := c.state()
	st.errs = append(st.errs, fmt.Errorf("config key %q: "+format, append([]any{key}, args...)...))
}
