package abi

// ConfigEntry is one key of a plugin's [plugins.config] table. Nested tables
// are flattened to dotted keys ("allow.networks"); scalars have one value,
// arrays one value per element. Values are rendered as text: strings as they
// are, integers and floats in decimal, booleans as "true"/"false", times and
// durations as written in the config file.
type ConfigEntry struct {
	Key    string
	Values []string
}

const tagConfigEntry = 1

// AppendConfig appends the encoding of a plugin's config to b. It is what
// wasmilter_init finds in its buffer.
func AppendConfig(b []byte, entries []ConfigEntry) []byte {
	for i := range entries {
		e := &entries[i]
		b = appendNested(b, tagConfigEntry, func(b []byte) []byte {
			b = appendString(b, e.Key)
			b = appendUvarint(b, uint64(len(e.Values)))
			for _, v := range e.Values {
				b = appendString(b, v)
			}
			return b
		})
	}
	return b
}

// DecodeConfig decodes a plugin's config.
func DecodeConfig(p []byte) ([]ConfigEntry, error) {
	var out []ConfigEntry
	r := reader{p: p}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return out, err
		}
		if tag != tagConfigEntry {
			continue
		}
		rc, err := decodeRecipient(val) // same layout: a string and a counted list
		if err != nil {
			return out, err
		}
		out = append(out, ConfigEntry{Key: rc.Addr, Values: rc.Args})
	}
	return out, nil
}

// InitAnswer is what wasmilter_init returns when it has something to say.
// A zero return from wasmilter_init means success with no features.
type InitAnswer struct {
	Error    string  // non-empty: the plugin refuses to start, and why
	Features Feature // what the plugin needs from the host
	// Hooks, when not empty, narrows the exported hooks to those the plugin
	// really handles. SDKs that export every hook symbol (the Go SDK must)
	// use it so the host does not ask the MTA for stages nobody needs.
	Hooks HookSet
}

const (
	tagInitError    = 1
	tagInitFeatures = 2
	tagInitHooks    = 3
)

// AppendInitAnswer appends the encoding of a to b.
func AppendInitAnswer(b []byte, a *InitAnswer) []byte {
	b = appendStringField(b, tagInitError, a.Error)
	if a.Features != 0 {
		b = appendUintField(b, tagInitFeatures, uint64(a.Features))
	}
	if a.Hooks != 0 {
		b = appendUintField(b, tagInitHooks, uint64(a.Hooks))
	}
	return b
}

// DecodeInitAnswer decodes an init answer.
func DecodeInitAnswer(p []byte) (InitAnswer, error) {
	var a InitAnswer
	r := reader{p: p}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return a, err
		}
		switch tag {
		case tagInitError:
			a.Error = string(val.p)
		case tagInitFeatures:
			v, err := val.uintValue()
			if err != nil {
				return a, err
			}
			a.Features = Feature(v)
		case tagInitHooks:
			v, err := val.uintValue()
			if err != nil {
				return a, err
			}
			a.Hooks = HookSet(v)
		}
	}
	return a, nil
}
