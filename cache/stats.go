package cache

// Stats is a snapshot of the cache's occupancy and counters. The counters
// are cumulative since New. Taken while nothing writes, they add up:
//
//	Hits + Misses + Mismatches == lookups
//	Stored - Removed.Total()   == Entries
type Stats struct {
	Properties TableStats `json:"properties"`
	KV         TableStats `json:"kv"`
}

// TableStats describe one of the two tables: header properties, or the
// plugins' key/value entries.
type TableStats struct {
	Entries    int64 `json:"entries"`
	Bytes      int64 `json:"bytes"`       // accounted bytes (see RATIONALE.md for the estimate)
	MaxEntries int   `json:"max_entries"` // 0: bounded by bytes only (KV)
	MaxBytes   int64 `json:"max_bytes"`   // this table's share of Config.MaxBytes

	Hits       uint64 `json:"hits"`
	Misses     uint64 `json:"misses"`
	Mismatches uint64 `json:"mismatches"` // properties only: an entry computed from another header

	Stored           uint64   `json:"stored"`             // inserts and replacements accepted
	Removed          Removals `json:"removed"`            // every way an entry left, by reason
	RejectedTooLarge uint64   `json:"rejected_too_large"` // single items over the whole budget, not stored
}

// Removals count entries that left the cache, by reason.
type Removals struct {
	Capacity uint64 `json:"capacity"` // evicted: the entry limit was reached
	Bytes    uint64 `json:"bytes"`    // evicted: the byte budget was reached
	Expired  uint64 `json:"expired"`  // lived longer than its TTL
	Flushed  uint64 `json:"flushed"`  // by Flush
	Mismatch uint64 `json:"mismatch"` // dropped by a lookup for a different Source
	Deleted  uint64 `json:"deleted"`  // by Delete or KVDelete
	Replaced uint64 `json:"replaced"` // overwritten by a newer value under the same key
}

// Total is the number of entries that left, for any reason.
func (r Removals) Total() uint64 {
	return r.Capacity + r.Bytes + r.Expired + r.Flushed + r.Mismatch + r.Deleted + r.Replaced
}

// Evicted is the number of entries pushed out by the limits.
func (r Removals) Evicted() uint64 { return r.Capacity + r.Bytes }

// reason is why an entry left; the index into shardCounters.removed.
type reason int

const (
	reasonDeleted reason = iota
	reasonCapacity
	reasonBytes
	reasonExpired
	reasonFlushed
	reasonMismatch
	reasonReplaced
	numReasons
)

// shardCounters are one shard's counters, guarded by the shard's mutex:
// counting under the lock the operation holds anyway costs nothing extra
// and keeps every shard's counters consistent with its contents.
type shardCounters struct {
	hits, misses, mismatches uint64
	stored, rejected         uint64
	removed                  [numReasons]uint64
}

func (c *shardCounters) addTo(st *TableStats) {
	st.Hits += c.hits
	st.Misses += c.misses
	st.Mismatches += c.mismatches
	st.Stored += c.stored
	st.RejectedTooLarge += c.rejected
	st.Removed.Capacity += c.removed[reasonCapacity]
	st.Removed.Bytes += c.removed[reasonBytes]
	st.Removed.Expired += c.removed[reasonExpired]
	st.Removed.Flushed += c.removed[reasonFlushed]
	st.Removed.Mismatch += c.removed[reasonMismatch]
	st.Removed.Deleted += c.removed[reasonDeleted]
	st.Removed.Replaced += c.removed[reasonReplaced]
}
