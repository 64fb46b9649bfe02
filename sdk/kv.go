package sdk

import (
	"encoding/binary"
	"errors"
	"time"
)

// The plugin's own key/value store lives in the host, shared by all of the
// plugin's instances (which hold no state a message can rely on) and
// namespaced by plugin name, inside the host's bounded cache: a value can be
// evicted before its TTL when the cache is full, so use it for counters and
// hints (rate limits, recently seen senders), never for anything that must
// not be lost.

// ErrKVRefused is returned when the host refuses a key/value write: the key
// is empty or longer than abi.MaxKVKey, the value does not fit the budget,
// or the host has no store.
var ErrKVRefused = errors.New("sdk: key/value store refused the write")

// KVGet returns the value stored under key.
func KVGet(key string) ([]byte, bool) {
	b, ok := fetch(func(out []byte) int32 { return host.kvGet(key, out) })
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

// KVSet stores value under key for ttl (0: the host's default lifetime).
func KVSet(key string, value []byte, ttl time.Duration) error {
	if host.kvSet(key, value, ttl.Milliseconds()) != 0 {
		return ErrKVRefused
	}
	return nil
}

// KVIncr atomically adds delta to the counter under key, creating it at
// delta with lifetime ttl, and returns the new value. Instances of the
// plugin on all sessions share the counter.
func KVIncr(key string, delta int64, ttl time.Duration) (int64, error) {
	var out [8]byte
	if host.kvIncr(key, delta, ttl.Milliseconds(), &out) != 0 {
		return 0, ErrKVRefused
	}
	return int64(binary.LittleEndian.Uint64(out[:])), nil
}
