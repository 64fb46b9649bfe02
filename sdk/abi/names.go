package abi

// Version is the ABI version this package describes. A guest's
// wasmilter_abi_version export must return it; the host refuses to load a
// plugin that answers anything else.
const Version = 1

// Guest exports every plugin has.
const (
	ExportABIVersion = "wasmilter_abi_version" // () -> i32
	ExportBuffer     = "wasmilter_buffer"      // (size i32) -> ptr i32
	ExportInit       = "wasmilter_init"        // (len i32) -> i64: 0, or ptr<<32|len of an [InitAnswer]
	ExportInitialize = "_initialize"           // WASI reactor start; optional
)

// HostModule is the import module of the host functions.
const HostModule = "wasmilter"

// Host functions in [HostModule].
//
// Functions that return data take an output buffer (ptr, cap) in guest memory
// and return the length of the data. When that length is larger than cap,
// nothing was written and the guest calls again with a buffer of that size.
// A negative result means "not available" ([ResultAbsent]).
const (
	HostLog   = "log"   // (level i32, ptr i32, len i32)
	HostNow   = "now"   // () -> i64: the host's clock, Unix nanoseconds
	HostMacro = "macro" // (name_ptr i32, name_len i32, out_ptr i32, out_cap i32) -> i32
	HostStamp = "stamp" // (out_ptr i32, out_cap i32) -> i32: an encoded [Stamp]
	// HostRecord writes the message's retry-ledger record, an encoded
	// [Record]; absent when the message was never deferred.
	HostRecord = "record" // (out_ptr i32, out_cap i32) -> i32
	// HostProperties writes the header properties the host parsed once
	// for the message, an encoded [Properties]; absent before end of header.
	HostProperties = "properties" // (out_ptr i32, out_cap i32) -> i32
	// The plugin's own key/value store, namespaced by plugin name and
	// bounded by the host's cache budget. Keys are 1 to MaxKVKey bytes.
	HostKVGet = "kv_get" // (key_ptr i32, key_len i32, out_ptr i32, out_cap i32) -> i32
	// kv_set returns 0, or [ResultRefused] when the value does not fit the
	// budget or the key is invalid. ttl_ms <= 0 means the cache's TTL.
	HostKVSet = "kv_set" // (key_ptr i32, key_len i32, val_ptr i32, val_len i32, ttl_ms i64) -> i32
	// kv_incr adds delta to a counter (created at delta with ttl_ms) and
	// writes the new value as 8 little-endian bytes at out_ptr; it returns
	// 0, or [ResultRefused] for an invalid key or a value that is not a counter.
	HostKVIncr = "kv_incr" // (key_ptr i32, key_len i32, delta i64, ttl_ms i64, out_ptr i32) -> i32
)

// ResultRefused is what a host function returns when it refused to do what
// was asked (a key/value write that does not fit, an invalid key).
const ResultRefused = -2

// MaxKVKey is the longest key/value store key, in bytes.
const MaxKVKey = 256

// ResultAbsent is what a host function returns when the thing asked for does
// not exist (an undefined macro, no stamp outside a message).
const ResultAbsent = -1

// LogLevel is the level argument of the log host function.
type LogLevel int32

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

// Hook is a point in the SMTP transaction at which a plugin can be called.
// A plugin implements a hook by exporting the function named by [Hook.Export];
// the host asks the MTA only for the stages some loaded plugin implements.
type Hook uint8

const (
	HookConnect Hook = iota // client connected
	HookHelo                // HELO/EHLO
	HookMail                // MAIL FROM
	HookRcpt                // each RCPT TO
	HookHeaders             // end of headers: the whole header is known
	HookMessage             // end of message: the last chance to change it
	HookDelay               // the retry sweeper asks about a held message
	NumHooks                // number of hooks; not a hook
)

var hookNames = [NumHooks]string{"connect", "helo", "mail", "rcpt", "headers", "message", "delay"}

// String returns the hook's short name ("connect", "headers", ...).
func (h Hook) String() string {
	if h < NumHooks {
		return hookNames[h]
	}
	return "hook(" + itoa(int(h)) + ")"
}

// Export returns the name of the guest export implementing the hook:
// "wasmilter_on_" followed by the short name. Its signature is (len i32) -> i64,
// returning ptr<<32|len of an encoded [Answer] (0 means "continue, no actions").
func (h Hook) Export() string { return "wasmilter_on_" + h.String() }

// Hooks returns every hook in order.
func Hooks() []Hook {
	hs := make([]Hook, NumHooks)
	for i := range hs {
		hs[i] = Hook(i)
	}
	return hs
}

// Feature bits a plugin reports in its [InitAnswer].
type Feature uint32

const (
	// FeatureBody: the plugin reads the message body (host function body_read,
	// added with a later ABI revision); without any plugin asking, the host
	// tells the MTA not to send the body at all.
	FeatureBody Feature = 1 << iota
)

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// HookSet is a set of hooks, one bit per [Hook].
type HookSet uint32

// Has reports whether h is in the set.
func (s HookSet) Has(h Hook) bool { return s&(1<<h) != 0 }

// With returns the set with h added.
func (s HookSet) With(h Hook) HookSet { return s | 1<<h }

// String lists the hooks in the set, e.g. "headers,message".
func (s HookSet) String() string {
	out := ""
	for h := Hook(0); h < NumHooks; h++ {
		if s.Has(h) {
			if out != "" {
				out += ","
			}
			out += h.String()
		}
	}
	if out == "" {
		return "none"
	}
	return out
}
