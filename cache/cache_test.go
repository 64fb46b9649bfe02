package cache

import (
	"encoding/json"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

func TestNewRejectsNonsense(t *testing.T) {
	good := DefaultConfig()
	tests := []struct {
		name   string
		modify func(*Config)
		err    string
	}{
		{"no entries", func(c *Config) { c.MaxEntries = 0 }, "MaxEntries is 0"},
		{"negative bytes", func(c *Config) { c.MaxBytes = -1 }, "MaxBytes is -1"},
		{"no TTL", func(c *Config) { c.TTL = 0 }, "TTL is 0s"},
		{"KV share 1", func(c *Config) { c.KVShare = 1 }, "KVShare is 1"},
		{"KV share NaN", func(c *Config) { c.KVShare = math.NaN() }, "KVShare is NaN"},
		{"KV share negative", func(c *Config) { c.KVShare = -0.1 }, "KVShare is -0.1"},
		{"budget below one entry", func(c *Config) { c.MaxBytes = 100 }, "less than one entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.modify(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not say %q", err, tc.err)
			}
		})
	}
	// Several mistakes are reported together.
	_, err := New(Config{})
	if err == nil || !strings.Contains(err.Error(), "MaxEntries") || !strings.Contains(err.Error(), "TTL") {
		t.Errorf("New(Config{}) = %v, want every problem named", err)
	}
}

func TestLookupOutcomes(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	key, src := keyOf(1), sourceOf(1)
	if p, o := c.Lookup(key, src); p != nil || o != Miss {
		t.Fatalf("empty cache: %v, %v", p, o)
	}
	want := smallProps(1)
	c.Store(key, src, want)
	if p, o := c.Lookup(key, src); p != want || o != Hit {
		t.Fatalf("after Store: %p %v, want %p hit", p, o, want)
	}
	checkCountersAddUp(t, c, 2)
}

// TestMismatchNeverServed is the incident's pollution: an entry computed
// from one header must never answer for another under the same key.
func TestMismatchNeverServed(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	key := keyOf(7)
	first := smallProps(1)
	c.Store(key, sourceOf(1), first)

	if p, o := c.Lookup(key, sourceOf(2)); p != nil || o != Mismatch {
		t.Fatalf("other source: got %v, %v; want nil, mismatch", p, o)
	}
	// The polluted entry is gone, not kept for the next caller.
	if p, o := c.Lookup(key, sourceOf(1)); p != nil || o != Miss {
		t.Fatalf("after a mismatch the entry must be dropped; got %v, %v", p, o)
	}
	second := smallProps(2)
	c.Store(key, sourceOf(2), second)
	if p, o := c.Lookup(key, sourceOf(2)); p != second || o != Hit {
		t.Fatalf("recomputed entry: got %p %v, want %p hit", p, o, second)
	}
	s := c.Stats().Properties
	if s.Mismatches != 1 || s.Removed.Mismatch != 1 {
		t.Errorf("mismatches = %d, removed for mismatch = %d; want 1 and 1", s.Mismatches, s.Removed.Mismatch)
	}
	checkCountersAddUp(t, c, 3)
}

func TestTTLExpiry(t *testing.T) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.TTL, cfg.Clock = time.Minute, clock.Now
	c := newTestCache(t, cfg)
	c.Store(keyOf(1), sourceOf(1), smallProps(1))

	clock.Advance(time.Minute - time.Second)
	if _, o := c.Lookup(keyOf(1), sourceOf(1)); o != Hit {
		t.Fatalf("before the TTL: %v, want hit", o)
	}
	clock.Advance(2 * time.Second)
	if _, o := c.Lookup(keyOf(1), sourceOf(1)); o != Miss {
		t.Fatalf("after the TTL: %v, want miss", o)
	}
	s := c.Stats().Properties
	if s.Entries != 0 || s.Bytes != 0 || s.Removed.Expired != 1 {
		t.Errorf("after expiry: entries %d, bytes %d, expired %d; want 0, 0, 1", s.Entries, s.Bytes, s.Removed.Expired)
	}
	checkCountersAddUp(t, c, 2)
}

// TestStoreNeverRefused fills the cache to ten times its capacity from
// one goroutine: every insert is readable right after it, the bounds hold,
// and the oldest entries were evicted to make room.
func TestStoreNeverRefused(t *testing.T) {
	cfg := Config{MaxEntries: 1000, MaxBytes: 4 << 20, TTL: time.Hour}
	c := newTestCache(t, cfg)
	const n = 10 * 1000
	for i := range n {
		c.Store(keyOf(i), sourceOf(i), smallProps(i))
		if _, o := c.Lookup(keyOf(i), sourceOf(i)); o != Hit {
			t.Fatalf("insert %d was not stored (lookup: %v)", i, o)
		}
	}
	s := c.Stats().Properties
	if s.Entries > int64(cfg.MaxEntries) {
		t.Errorf("entries = %d, over MaxEntries %d", s.Entries, cfg.MaxEntries)
	}
	if s.Removed.Capacity == 0 {
		t.Errorf("no evictions for capacity after %d inserts into %d: %+v", n, cfg.MaxEntries, s.Removed)
	}
	if s.RejectedTooLarge != 0 {
		t.Errorf("%d inserts refused", s.RejectedTooLarge)
	}
	checkCountersAddUp(t, c, n)
}

// TestChurnStaysWithinBudget writes ten times the capacity from several
// goroutines while a sampler watches occupancy: it must stay within 10% of
// the bounds at every sample. Two shapes: small entries (the entry limit
// binds) and large ones (the byte budget binds).
func TestChurnStaysWithinBudget(t *testing.T) {
	big := Parse(realisticHeader(0), ParseOptions{})
	shapes := []struct {
		name  string
		cfg   Config
		props func(i int) *Properties
	}{
		{"entries bind", Config{MaxEntries: 4096, MaxBytes: 64 << 20, TTL: time.Hour, KVShare: 0.25}, smallProps},
		{"bytes bind", Config{MaxEntries: 65536, MaxBytes: 4 << 20, TTL: time.Hour, KVShare: 0.25},
			func(int) *Properties { return big }},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			c := newTestCache(t, sh.cfg)
			capacity := min(int64(sh.cfg.MaxEntries), c.propsBudget/(entryOverhead+sh.props(0).Size()))
			total := int(10 * capacity)
			var maxEntries, maxBytes atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() { // the sampler
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					default:
					}
					s := c.props.stats() // without the sweep of Stats: what is held right now
					maxEntries.Store(max(maxEntries.Load(), s.Entries))
					maxBytes.Store(max(maxBytes.Load(), s.Bytes))
					runtime.Gosched()
				}
			}()
			const writers = 4
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := w; i < total; i += writers {
						c.Store(keyOf(i), sourceOf(i), sh.props(i))
					}
				})
			}
			wg.Wait()
			close(stop)
			<-sampled
			s := c.Stats().Properties
			t.Logf("capacity %d entries; peak %d entries, %d bytes of %d; evicted %d for entries, %d for bytes",
				capacity, maxEntries.Load(), maxBytes.Load(), s.MaxBytes, s.Removed.Capacity, s.Removed.Bytes)
			if limit := int64(sh.cfg.MaxEntries) * 11 / 10; maxEntries.Load() > limit {
				t.Errorf("peak entries %d over MaxEntries + 10%% (%d)", maxEntries.Load(), limit)
			}
			if limit := s.MaxBytes * 11 / 10; maxBytes.Load() > limit {
				t.Errorf("peak bytes %d over budget + 10%% (%d)", maxBytes.Load(), limit)
			}
			if s.RejectedTooLarge != 0 || s.Stored != uint64(total) {
				t.Errorf("stored %d of %d, rejected %d: no insert may be refused", s.Stored, total, s.RejectedTooLarge)
			}
			if s.Removed.Evicted() == 0 {
				t.Error("nothing was evicted")
			}
			checkCountersAddUp(t, c, 0)
		})
	}
}

func TestRejectedTooLarge(t *testing.T) {
	cfg := Config{MaxEntries: 10, MaxBytes: 64 << 10, TTL: time.Hour, KVShare: 0.5}
	c := newTestCache(t, cfg)
	huge := &Properties{Subject: strings.Repeat("x", 40<<10)} // over the 32 KiB properties share
	c.Store(keyOf(1), sourceOf(1), huge)
	if _, o := c.Lookup(keyOf(1), sourceOf(1)); o != Miss {
		t.Fatalf("too large item: lookup %v, want miss", o)
	}
	c.Store(keyOf(2), sourceOf(2), smallProps(2)) // and the cache still works
	if _, o := c.Lookup(keyOf(2), sourceOf(2)); o != Hit {
		t.Fatalf("after a rejection: lookup %v, want hit", o)
	}
	s := c.Stats().Properties
	if s.RejectedTooLarge != 1 || s.Stored != 1 {
		t.Errorf("rejected %d, stored %d; want 1 and 1", s.RejectedTooLarge, s.Stored)
	}
	checkCountersAddUp(t, c, 2)
}

// TestFlushKeepsReadersValue: a flush empties the cache, and a message in
// flight keeps the properties it already holds, unchanged.
func TestFlushKeepsReadersValue(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	for i := range 100 {
		c.Store(keyOf(i), sourceOf(i), Parse(realisticHeader(i), ParseOptions{}))
	}
	if err := c.KVSet("greylist", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	held, _ := c.Lookup(keyOf(5), sourceOf(5))
	before := *held

	if n := c.Flush(); n != 101 {
		t.Errorf("Flush = %d, want 101 (100 properties + 1 KV)", n)
	}
	if held.MessageID != before.MessageID || held.Subject != before.Subject {
		t.Errorf("a reader's properties changed under it")
	}
	if _, o := c.Lookup(keyOf(5), sourceOf(5)); o != Miss {
		t.Errorf("after Flush: %v, want miss", o)
	}
	if _, ok := c.KVGet("greylist", "k"); ok {
		t.Error("KV survived Flush")
	}
	s := c.Stats()
	if s.Properties.Entries != 0 || s.Properties.Removed.Flushed != 100 || s.KV.Removed.Flushed != 1 {
		t.Errorf("after Flush: %+v", s)
	}
	checkCountersAddUp(t, c, 2)
}

func TestDelete(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	c.Store(keyOf(1), sourceOf(1), smallProps(1))
	if !c.Delete(keyOf(1)) {
		t.Error("Delete of a stored key = false")
	}
	if c.Delete(keyOf(1)) {
		t.Error("second Delete = true")
	}
	if s := c.Stats().Properties; s.Removed.Deleted != 1 || s.Entries != 0 {
		t.Errorf("after Delete: %+v", s)
	}
	checkCountersAddUp(t, c, 0)
}

func TestReplaceCounts(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	c.Store(keyOf(1), sourceOf(1), smallProps(1))
	c.Store(keyOf(1), sourceOf(2), smallProps(2))
	if s := c.Stats().Properties; s.Removed.Replaced != 1 || s.Entries != 1 || s.Stored != 2 {
		t.Errorf("after replacing: %+v", s)
	}
	checkCountersAddUp(t, c, 0)
}

func TestInspect(t *testing.T) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.Clock = clock.Now
	c := newTestCache(t, cfg)
	p := Parse(realisticHeader(3), ParseOptions{})
	c.Store(keyOf(3), sourceOf(3), p)

	info, ok := c.Inspect(keyOf(3))
	if !ok {
		t.Fatal("Inspect found nothing")
	}
	if info.Key != keyOf(3) || info.Source != sourceOf(3) || info.Properties != p ||
		info.Size != entryOverhead+p.Size() || !info.StoredAt.Equal(clock.Now()) ||
		!info.ExpiresAt.Equal(clock.Now().Add(cfg.TTL)) {
		t.Errorf("Inspect = %+v", info)
	}
	if s := c.Stats().Properties; s.Hits+s.Misses != 0 {
		t.Error("Inspect counted as a lookup")
	}
	if _, ok := c.Inspect(keyOf(4)); ok {
		t.Error("Inspect of a missing key = true")
	}
	// The admin API serves it as JSON: key and source as text.
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"key":"`+keyOf(3).String()+`"`) || !strings.Contains(string(b), sourceOf(3).String()) {
		t.Errorf("JSON: %s", b)
	}
}

// TestKeyIsStampIdentity: identities convert to keys and print alike, so an
// admin can look up the identity a log line shows.
func TestKeyIsStampIdentity(t *testing.T) {
	id := stamp.Derive(stamp.Facts{Sender: "a@example.net", Recipients: []string{"b@example.org"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<x@example.net>"}}})
	k := Key(id)
	if k.String() != id.String() {
		t.Errorf("Key %s prints differently from identity %s", k, id)
	}
	back, err := ParseKey(id.String())
	if err != nil || back != k {
		t.Errorf("ParseKey(%s) = %v, %v", id, back, err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("1", 26)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestSourceOf(t *testing.T) {
	a := []Field{{"Subject", "ab"}, {"X", "c"}}
	b := []Field{{"Subject", "a"}, {"bX", "c"}} // same bytes, different split
	if SourceOf(a) == SourceOf(b) {
		t.Error("fields that differ only in where one ends hash alike")
	}
	if SourceOf(a) != SourceOf([]Field{{"Subject", "ab"}, {"X", "c"}}) {
		t.Error("SourceOf is not deterministic")
	}
	long := []Field{{"Subject", strings.Repeat("y", 3*sourceScratch+17)}}
	longer := []Field{{"Subject", strings.Repeat("y", 3*sourceScratch+18)}}
	if SourceOf(long) == SourceOf(longer) {
		t.Error("values longer than the scratch buffer are not fully hashed")
	}
}

// TestAccountedBytesMatchHeap checks the byte estimate against the heap: a
// cache that undercounts would overrun its budget in real memory.
func TestAccountedBytesMatchHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates about 30 MB")
	}
	const n = 20_000
	c := newTestCache(t, Config{MaxEntries: 2 * n, MaxBytes: 1 << 30, TTL: time.Hour})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		c.Store(keyOf(i), sourceOf(i), Parse(realisticHeader(i), ParseOptions{}))
	}
	runtime.GC() // Parse's garbage goes; what stays is held by the cache
	runtime.ReadMemStats(&after)
	measured := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	accounted := float64(c.Stats().Properties.Bytes)
	ratio := measured / accounted
	t.Logf("%d entries: accounted %.0f B/entry, heap %.0f B/entry (ratio %.2f)", n, accounted/n, measured/n, ratio)
	if ratio < 0.7 || ratio > 1.3 {
		t.Errorf("heap use is %.2f times the accounted bytes; the estimate in entryOverhead is off", ratio)
	}
	runtime.KeepAlive(c)
}

// TestInFlightMessagesStayCached models the server: messages arrive one
// after another, each stores its properties once, and plugins read them a
// few times while the message is in flight (here 200 at once). With room
// for more than the messages in flight, every such read must hit. This is
// what ruled out a frequency-based admission policy (RATIONALE.md): it
// turned away new messages in favour of finished ones that had been read
// more often.
func TestInFlightMessagesStayCached(t *testing.T) {
	const capacity, inFlight, reads = 1000, 200, 4
	c := newTestCache(t, Config{MaxEntries: capacity, MaxBytes: 64 << 20, TTL: time.Hour})
	hits, lookups := 0, 0
	for i := range 20 * capacity {
		c.Store(keyOf(i), sourceOf(i), smallProps(i))
		for r := 1; r <= reads; r++ {
			j := i - r*inFlight/reads // messages that arrived earlier and are still in flight
			if j < 0 {
				continue
			}
			lookups++
			if _, o := c.Lookup(keyOf(j), sourceOf(j)); o == Hit {
				hits++
			}
		}
	}
	if hits != lookups {
		t.Errorf("in-flight lookups: %d of %d hit (%.1f%%); want all", hits, lookups, 100*float64(hits)/float64(lookups))
	}
}

func TestMaxItemBytesDefault(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	props, kv := c.MaxItemBytes()
	if props != 768<<10 || kv != 256<<10 {
		t.Errorf("MaxItemBytes = %d, %d; the documentation says 768 KiB and 256 KiB", props, kv)
	}
}
