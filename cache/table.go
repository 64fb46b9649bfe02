package cache

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// item is what a table holds: an immutable value that knows its
// accounted size and when it expires.
type item interface {
	accountedSize() int64
	expiresAt() time.Time
}

// table is a bounded LRU map: entries and bytes, each bound split evenly
// over shards. Each shard is a golang-lru simplelru behind its own mutex;
// the table adds what the library lacks: the byte budget, expiry against
// an injected clock, and exact counters by reason. All counting happens
// under the shard lock, so the counters of a shard always add up.
//
// Why LRU and not a frequency-based policy: a message's properties are
// read while the message is in flight and rarely again; an admission
// policy favouring frequently read keys turns away the new message in
// favour of finished ones (RATIONALE.md has the measurement).
type table[K comparable, V item] struct {
	shards []shard[K, V]
	mask   uint64
	hash   func(K) uint64

	shardEntries int   // entry bound per shard; math.MaxInt = bytes only
	shardBytes   int64 // byte bound per shard
}

type shard[K comparable, V item] struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[K, V]
	bytes int64
	c     shardCounters
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

// Limits of sharding: a shard gets at least minShardBytes and
// minShardEntries, so that small configurations are not split into
// shards too small to hold a typical item.
const (
	maxShards       = 64
	minShardBytes   = 64 << 10
	minShardEntries = 16
)

// shardCount picks a power of two no larger than maxShards that leaves
// every shard at least minShardBytes and (if entries bound) minShardEntries.
func shardCount(maxEntries int, budget int64) int {
	n := int64(maxShards)
	n = min(n, budget/minShardBytes)
	if maxEntries < math.MaxInt {
		n = min(n, int64(maxEntries/minShardEntries))
	}
	if n < 1 {
		return 1
	}
	return 1 << (bits.Len64(uint64(n)) - 1)
}

// newTable returns a table bounded by maxEntries (math.MaxInt: none) and
// budget bytes, sharded by hash.
func newTable[K comparable, V item](maxEntries int, budget int64, hash func(K) uint64) *table[K, V] {
	n := shardCount(maxEntries, budget)
	t := &table[K, V]{shards: make([]shard[K, V], n), mask: uint64(n - 1), hash: hash,
		shardEntries: maxEntries, shardBytes: budget / int64(n)}
	if maxEntries < math.MaxInt {
		t.shardEntries = maxEntries / n
	}
	for i := range t.shards {
		// simplelru's own size bound is never reached: the table evicts
		// first, so it can say why.
		t.shards[i].lru, _ = simplelru.NewLRU[K, V](math.MaxInt, nil)
	}
	return t
}

func (t *table[K, V]) shardOf(k K) *shard[K, V] {
	return &t.shards[t.hash(k)&t.mask]
}

// maxItem is the largest item the table can hold: a shard's budget.
func (t *table[K, V]) maxItem() int64 { return t.shardBytes }

// lookup returns the live value under k. A value for which accept
// returns false is removed and reported as a mismatch (nil accept takes
// anything).
func (t *table[K, V]) lookup(k K, now time.Time, accept func(V) bool) (V, Outcome) {
	s := t.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.lru.Get(k)
	if ok && !now.Before(v.expiresAt()) {
		s.removeLocked(k, v, reasonExpired)
		ok = false
	}
	var zero V
	switch {
	case !ok:
		s.c.misses++
		return zero, Miss
	case accept != nil && !accept(v):
		s.c.mismatches++
		s.removeLocked(k, v, reasonMismatch)
		return zero, Mismatch
	}
	s.c.hits++
	return v, Hit
}

// peek returns the live value under k without counting a lookup or
// touching its recency.
func (t *table[K, V]) peek(k K, now time.Time) (V, bool) {
	s := t.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.lru.Peek(k)
	if !ok || !now.Before(v.expiresAt()) {
		var zero V
		return zero, false
	}
	return v, true
}

// put stores v under k, evicting least recently used entries until it
// fits. It refuses only an item larger than a whole shard's budget.
func (t *table[K, V]) put(k K, v V, now time.Time) bool {
	s := t.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.putLocked(s, k, v, now)
}

func (t *table[K, V]) putLocked(s *shard[K, V], k K, v V, now time.Time) bool {
	size := v.accountedSize()
	if size > t.shardBytes {
		s.c.rejected++
		return false
	}
	if old, ok := s.lru.Peek(k); ok {
		s.removeLocked(k, old, reasonReplaced)
	}
	for s.lru.Len() > 0 && (s.lru.Len() >= t.shardEntries || s.bytes+size > t.shardBytes) {
		s.evictOldestLocked(now, s.lru.Len() >= t.shardEntries)
	}
	s.dropExpiredTailLocked(now)
	s.lru.Add(k, v)
	s.bytes += size
	s.c.stored++
	return true
}

// update runs fn on the live value under k (found false if none) and
// stores what it returns, atomically with respect to other calls on k.
func (t *table[K, V]) update(k K, now time.Time, fn func(old V, found bool) (V, error)) error {
	s := t.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, found := s.lru.Peek(k)
	if found && !now.Before(old.expiresAt()) {
		s.removeLocked(k, old, reasonExpired)
		var zero V
		old, found = zero, false
	}
	v, err := fn(old, found)
	if err != nil {
		return err
	}
	if !t.putLocked(s, k, v, now) {
		return errTableItemTooLarge
	}
	return nil
}

// countRejected counts an item refused before it reached put.
func (t *table[K, V]) countRejected(k K) {
	s := t.shardOf(k)
	s.mu.Lock()
	s.c.rejected++
	s.mu.Unlock()
}

// remove deletes k for reason and reports whether it was there.
func (t *table[K, V]) remove(k K, why reason) bool {
	s := t.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.lru.Peek(k)
	if ok {
		s.removeLocked(k, v, why)
	}
	return ok
}

// flush empties every shard and returns how many entries went.
func (t *table[K, V]) flush() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.c.removed[reasonFlushed] += uint64(s.lru.Len())
		s.lru.Purge()
		s.bytes = 0
		s.mu.Unlock()
	}
	return n
}

// sweep removes every expired entry. Lookups and writes already skip and
// drop expired entries; sweep makes the occupancy a report shows exact.
func (t *table[K, V]) sweep(now time.Time) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, k := range s.lru.Keys() {
			if v, ok := s.lru.Peek(k); ok && !now.Before(v.expiresAt()) {
				s.removeLocked(k, v, reasonExpired)
			}
		}
		s.mu.Unlock()
	}
}

// each calls fn with every live entry, one shard at a time; fn runs
// without the shard lock held, on a copy of the shard's entries.
func (t *table[K, V]) each(now time.Time, fn func(K, V) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		keys := s.lru.Keys()
		vals := s.lru.Values()
		s.mu.Unlock()
		for j, k := range keys {
			if now.Before(vals[j].expiresAt()) && !fn(k, vals[j]) {
				return
			}
		}
	}
}

// stats sums the shards' counters.
func (t *table[K, V]) stats() (st TableStats) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		st.Entries += int64(s.lru.Len())
		st.Bytes += s.bytes
		s.c.addTo(&st)
		s.mu.Unlock()
	}
	return st
}

func (s *shard[K, V]) removeLocked(k K, v V, why reason) {
	s.lru.Remove(k)
	s.bytes -= v.accountedSize()
	s.c.removed[why]++
}

// evictOldestLocked removes the least recently used entry; the reason is
// expiry if it had expired anyway, else the bound that forced it.
func (s *shard[K, V]) evictOldestLocked(now time.Time, atEntryLimit bool) {
	k, v, _ := s.lru.GetOldest()
	switch {
	case !now.Before(v.expiresAt()):
		s.removeLocked(k, v, reasonExpired)
	case atEntryLimit:
		s.removeLocked(k, v, reasonCapacity)
	default:
		s.removeLocked(k, v, reasonBytes)
	}
}

// dropExpiredTailLocked removes up to two expired entries from the old
// end, so that expired entries do not linger under write traffic.
func (s *shard[K, V]) dropExpiredTailLocked(now time.Time) {
	for range 2 {
		k, v, ok := s.lru.GetOldest()
		if !ok || now.Before(v.expiresAt()) {
			return
		}
		s.removeLocked(k, v, reasonExpired)
	}
}
