package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"time"
	"unsafe"
)

// Config bounds a Cache. Every field must be set; DefaultConfig gives
// sensible values.
type Config struct {
	MaxEntries int              // most properties entries held (the incident's cache had 65,536)
	MaxBytes   int64            // memory budget for properties and KV together
	TTL        time.Duration    // lifetime of a properties entry; default lifetime of a KV entry
	KVShare    float64          // fraction of MaxBytes reserved for the plugins' KV, in [0, 1); 0 disables it
	Clock      func() time.Time // nil = time.Now; tests inject a fake clock
}

// DefaultConfig returns the configuration the server uses unless told
// otherwise: 65,536 entries (the incident's limit, now with eviction) in
// 64 MiB, a quarter of it for plugins' KV, entries living 15 minutes (far
// longer than a message takes to pass; a retry recomputes cheaply).
func DefaultConfig() Config {
	return Config{MaxEntries: 65_536, MaxBytes: 64 << 20, TTL: 15 * time.Minute, KVShare: 0.25}
}

// Outcome is the result of a Lookup.
type Outcome int

const (
	Miss     Outcome = iota // nothing under the key
	Hit                     // properties of this very header
	Mismatch                // an entry computed from another header was there; it is dropped, not served
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Miss:
		return "miss"
	case Mismatch:
		return "mismatch"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// entry is what the properties table holds; immutable once stored.
type entry struct {
	src      Source
	props    *Properties
	size     int64 // accounted bytes, entryOverhead included
	storedAt time.Time
	expires  time.Time
}

func (e *entry) accountedSize() int64 { return e.size }
func (e *entry) expiresAt() time.Time { return e.expires }

// entryOverhead estimates what one properties entry costs beyond its
// Properties: the entry struct, and golang-lru's map slot and list element
// holding the key and a pointer. TestAccountedBytesMatchHeap checks the
// estimate against the heap.
const entryOverhead = int64(unsafe.Sizeof(entry{})) + lruNodeOverhead

// lruNodeOverhead is golang-lru's bookkeeping per entry besides the key:
// a list element (key, value, three pointers) and a map slot with its
// share of the map's spare capacity.
const lruNodeOverhead = 112

// Cache is the bounded header property cache and the plugins' KV store.
// It is safe for concurrent use.
type Cache struct {
	cfg         Config
	now         func() time.Time
	propsBudget int64 // bytes for properties
	kvBudget    int64 // bytes for KV; 0 = KV disabled

	props *table[Key, *entry]
	kv    *table[string, *kvEntry] // nil when kvBudget == 0
}

// New returns a cache bounded by cfg, or an error saying what in cfg makes
// no sense.
func New(cfg Config) (*Cache, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cache config: %w", err)
	}
	kvBudget := int64(float64(cfg.MaxBytes) * cfg.KVShare)
	c := &Cache{cfg: cfg, now: cfg.Clock, kvBudget: kvBudget, propsBudget: cfg.MaxBytes - kvBudget}
	if c.now == nil {
		c.now = time.Now
	}
	if smallest := entryOverhead + propertiesOverhead; c.propsBudget < smallest {
		return nil, fmt.Errorf("cache config: MaxBytes %d leaves %d bytes for properties, less than one entry (%d)",
			cfg.MaxBytes, c.propsBudget, smallest)
	}
	c.props = newTable[Key, *entry](cfg.MaxEntries, c.propsBudget, hashKey)
	if kvBudget > 0 {
		c.kv = newTable[string, *kvEntry](kvUnbounded, kvBudget, hashString)
	}
	return c, nil
}

func (cfg Config) validate() error {
	var errs []error
	if cfg.MaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("MaxEntries is %d; want at least 1", cfg.MaxEntries))
	}
	if cfg.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("MaxBytes is %d; want a positive budget", cfg.MaxBytes))
	}
	if cfg.TTL <= 0 {
		errs = append(errs, fmt.Errorf("TTL is %v; want a positive lifetime", cfg.TTL))
	}
	if !(cfg.KVShare >= 0 && cfg.KVShare < 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("KVShare is %v; want a fraction in [0, 1)", cfg.KVShare))
	}
	return errors.Join(errs...)
}

// hashKey spreads keys over shards. Keys are already hashes (identities),
// but mixing both halves keeps a poorly spread key set (tests, a future
// identity scheme) from piling into one shard.
func hashKey(k Key) uint64 {
	x := binary.LittleEndian.Uint64(k[:8]) ^ binary.LittleEndian.Uint64(k[8:])
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// Lookup returns the properties stored under key if they were computed
// from the header src identifies. An entry computed from another header is
// never returned: the lookup counts a Mismatch and drops it, so the caller
// recomputes and stores the right one.
func (c *Cache) Lookup(key Key, src Source) (*Properties, Outcome) {
	e, o := c.props.lookup(key, c.now(), func(e *entry) bool { return e.src == src })
	if o != Hit {
		return nil, o
	}
	return e.props, Hit
}

// Store records p, computed from the header src identifies, under key,
// replacing what was there. It never fails and is never refused for lack
// of room: the least recently used entries are evicted. Only properties
// larger than a shard's share of the budget (see MaxItemBytes) are not
// stored, and counted as RejectedTooLarge. p must not be modified
// afterwards; readers share it. A nil p is ignored.
func (c *Cache) Store(key Key, src Source, p *Properties) {
	if p == nil {
		return
	}
	now := c.now()
	e := &entry{src: src, props: p, size: entryOverhead + p.Size(), storedAt: now, expires: now.Add(c.cfg.TTL)}
	c.props.put(key, e, now)
}

// MaxItemBytes returns the largest properties entry and the largest KV
// item (key and value with overhead) the cache stores. The budget is
// split over shards so that readers rarely wait for one another, and an
// item must fit in one shard: with DefaultConfig, 768 KiB and 256 KiB.
func (c *Cache) MaxItemBytes() (props, kv int64) {
	if c.kv != nil {
		kv = c.kv.maxItem()
	}
	return c.props.maxItem(), kv
}

// Delete removes the properties under key and reports whether there were.
func (c *Cache) Delete(key Key) bool { return c.props.remove(key, reasonDeleted) }

// Flush drops every properties and KV entry and returns how many went.
// Messages in flight keep the properties they already hold (stored values
// are immutable); their next Lookup misses and they recompute.
func (c *Cache) Flush() int {
	n := c.props.flush()
	if c.kv != nil {
		n += c.kv.flush()
	}
	return n
}

// Stats returns a snapshot of occupancy and counters. It first removes
// expired entries, so that they are not reported as held; that walks
// every entry, which is fine at the rate of an admin request or a metrics
// scrape, not per message.
func (c *Cache) Stats() Stats {
	now := c.now()
	c.props.sweep(now)
	st := Stats{Properties: c.props.stats()}
	st.Properties.MaxEntries, st.Properties.MaxBytes = c.cfg.MaxEntries, c.propsBudget
	if c.kv != nil {
		c.kv.sweep(now)
		st.KV = c.kv.stats()
	}
	st.KV.MaxBytes = c.kvBudget
	return st
}

// EntryInfo describes one stored properties entry, for `wasmilter cache
// show` and the admin API.
type EntryInfo struct {
	Key        Key         `json:"key"`
	Source     Source      `json:"source"`
	Size       int64       `json:"size"` // accounted bytes
	StoredAt   time.Time   `json:"stored_at"`
	ExpiresAt  time.Time   `json:"expires_at"`
	Properties *Properties `json:"properties"`
}

// Inspect describes the entry under key without counting a lookup or
// touching its recency.
func (c *Cache) Inspect(key Key) (EntryInfo, bool) {
	e, ok := c.props.peek(key, c.now())
	if !ok {
		return EntryInfo{}, false
	}
	return entryInfo(key, e), true
}

// Entries iterates over the live properties entries, shard by shard, in no
// particular order, for listing; it is weakly consistent with concurrent
// writes and holds no lock while the caller runs.
func (c *Cache) Entries() iter.Seq[EntryInfo] {
	return func(yield func(EntryInfo) bool) {
		c.props.each(c.now(), func(k Key, e *entry) bool { return yield(entryInfo(k, e)) })
	}
}

func entryInfo(k Key, e *entry) EntryInfo {
	return EntryInfo{Key: k, Source: e.src, Size: e.size, StoredAt: e.storedAt, ExpiresAt: e.expires, Properties: e.props}
}
