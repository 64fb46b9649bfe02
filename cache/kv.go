package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Errors of the KV store, wrapped with the namespace and key.
var (
	ErrBadNamespace = errors.New("bad namespace")
	ErrBadKey       = errors.New("bad key")
	ErrTooLarge     = errors.New("item larger than the KV budget")
	ErrNotInteger   = errors.New("value is not a decimal int64")
	ErrOverflow     = errors.New("increment overflows int64")
)

// Limits of KV names. A namespace is a plugin name; keys are what plugins
// choose (a sender, a client IP, a message identity).
const (
	MaxNamespaceLen = 128
	MaxKVKeyLen     = 1024
)

// kvEntry is an immutable KV value. Counters (KVIncr) are stored as decimal
// text, so KVGet of a counter reads "42", as with Redis INCR.
type kvEntry struct {
	value   []byte
	size    int64 // accounted bytes
	expires time.Time
}

func (e *kvEntry) accountedSize() int64 { return e.size }
func (e *kvEntry) expiresAt() time.Time { return e.expires }

// kvUnbounded: the KV table is bounded by bytes only; every entry's
// overhead is counted, so the byte budget bounds the count too.
const kvUnbounded = math.MaxInt

// kvEntryOverhead estimates one KV entry beyond its key and value bytes:
// the entry struct, the value's slice header, and golang-lru's
// bookkeeping with the string key header.
const kvEntryOverhead = int64(unsafe.Sizeof(kvEntry{})+unsafe.Sizeof("")) + lruNodeOverhead

func kvSize(compositeKey string, value []byte) int64 {
	return kvEntryOverhead + int64(len(compositeKey)) + int64(len(value))
}

var kvSeed = maphash.MakeSeed()

func hashString(s string) uint64 { return maphash.String(kvSeed, s) }

// errTableItemTooLarge is how the table reports an item over a shard's
// budget from update; callers turn it into ErrTooLarge with context.
var errTableItemTooLarge = errors.New("item over a shard's budget")

// kvKey joins namespace and key. The namespace cannot contain NUL, so no
// two (namespace, key) pairs share a joined key.
func kvKey(ns, key string) (string, error) {
	if ns == "" || len(ns) > MaxNamespaceLen || strings.IndexByte(ns, 0) >= 0 {
		return "", fmt.Errorf("kv namespace %.40q: %w: want 1 to %d bytes without NUL", ns, ErrBadNamespace, MaxNamespaceLen)
	}
	if key == "" || len(key) > MaxKVKeyLen {
		return "", fmt.Errorf("kv %s key %.40q: %w: want 1 to %d bytes, got %d", ns, key, ErrBadKey, MaxKVKeyLen, len(key))
	}
	return ns + "\x00" + key, nil
}

func (c *Cache) kvTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return c.cfg.TTL
	}
	return ttl
}

// KVGet returns a copy of the value of key in namespace ns.
func (c *Cache) KVGet(ns, key string) ([]byte, bool) {
	k, err := kvKey(ns, key)
	if err != nil || c.kv == nil {
		return nil, false
	}
	e, o := c.kv.lookup(k, c.now(), nil)
	if o != Hit {
		return nil, false
	}
	return append([]byte(nil), e.value...), true
}

// KVSet stores a copy of value under key in namespace ns for ttl (0 = the
// cache's TTL), evicting the least recently used entries if the KV share is
// full. It fails only for a bad namespace or key, or an item larger than
// the KV budget allows (MaxItemBytes; counted as RejectedTooLarge).
func (c *Cache) KVSet(ns, key string, value []byte, ttl time.Duration) error {
	k, err := kvKey(ns, key)
	if err != nil {
		return err
	}
	if err := c.kvFits(ns, key, k, kvSize(k, value)); err != nil {
		return err
	}
	now := c.now()
	e := &kvEntry{value: append([]byte(nil), value...), size: kvSize(k, value), expires: now.Add(c.kvTTL(ttl))}
	c.kv.put(k, e, now)
	return nil
}

// kvFits rejects an item no KV shard can hold; without a KV share that is
// every item.
func (c *Cache) kvFits(ns, key, k string, size int64) error {
	if c.kv != nil && size <= c.kv.maxItem() {
		return nil
	}
	var limit int64
	if c.kv != nil {
		limit = c.kv.maxItem()
		c.kv.countRejected(k)
	}
	return fmt.Errorf("kv %s key %.40q: %w: %d bytes, limit %d (KVShare of MaxBytes, per shard)",
		ns, key, ErrTooLarge, size, limit)
}

// KVIncr adds delta to the counter under key in namespace ns and returns
// the new value, atomically. A missing (or expired) counter is created at
// delta and lives for ttl (0 = the cache's TTL); an existing one keeps its
// expiry, so a counter counts within a fixed window. A value that is not a
// decimal int64, or an overflow, is an error and leaves the value as it was.
func (c *Cache) KVIncr(ns, key string, delta int64, ttl time.Duration) (int64, error) {
	k, err := kvKey(ns, key)
	if err != nil {
		return 0, err
	}
	// A counter's text is at most 20 bytes; check the largest it can be.
	if err := c.kvFits(ns, key, k, kvSize(k, make([]byte, 20))); err != nil {
		return 0, err
	}
	now := c.now()
	var result int64
	err = c.kv.update(k, now, func(old *kvEntry, found bool) (*kvEntry, error) {
		if result, err = increment(old, found, delta); err != nil {
			return nil, err
		}
		value := strconv.AppendInt(nil, result, 10)
		expires := now.Add(c.kvTTL(ttl))
		if found {
			expires = old.expires
		}
		return &kvEntry{value: value, size: kvSize(k, value), expires: expires}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("kv %s key %.40q: %w", ns, key, err)
	}
	return result, nil
}

func increment(old *kvEntry, found bool, delta int64) (int64, error) {
	if !found {
		return delta, nil
	}
	cur, err := strconv.ParseInt(string(old.value), 10, 64)
	if err != nil {
		return 0, ErrNotInteger
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		return 0, ErrOverflow
	}
	return cur + delta, nil
}

// KVDelete removes key from namespace ns and reports whether it was there.
func (c *Cache) KVDelete(ns, key string) bool {
	k, err := kvKey(ns, key)
	if err != nil || c.kv == nil {
		return false
	}
	return c.kv.remove(k, reasonDeleted)
}
