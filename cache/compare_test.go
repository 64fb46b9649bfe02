package cache

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

// The benchmarks in this file are the measurement behind the choice of
// cache library (RATIONALE.md): github.com/maypok86/otter/v2 (W-TinyLFU,
// lock-free reads) against github.com/hashicorp/golang-lru/v2 (LRU), the
// latter both as its own thread-safe lru.Cache (one lock) and as this
// package uses it (simplelru in 64 locked shards, with byte accounting).

// candidate is the least a cache library must do for us. Every set
// stores a fresh entry, as Store does, so that no candidate is flattered
// by one shared value that always sits in the CPU cache; a hit reads the
// properties, as a plugin would.
type candidate interface {
	get(Key) *Properties
	set(Key, *Properties)
}

func newEntry(p *Properties) *entry {
	return &entry{props: p, size: entryOverhead + p.Size(), expires: time.Now().Add(time.Hour)}
}

type otterCandidate struct{ c *otter.Cache[Key, *entry] }

func (o otterCandidate) get(k Key) *Properties {
	if e, ok := o.c.GetIfPresent(k); ok {
		return e.props
	}
	return nil
}
func (o otterCandidate) set(k Key, p *Properties) { o.c.Set(k, newEntry(p)) }

type lruCandidate struct{ c *lru.Cache[Key, *entry] }

func (l lruCandidate) get(k Key) *Properties {
	if e, ok := l.c.Get(k); ok {
		return e.props
	}
	return nil
}
func (l lruCandidate) set(k Key, p *Properties) { l.c.Add(k, newEntry(p)) }

type oursCandidate struct{ c *Cache }

func (o oursCandidate) get(k Key) *Properties    { p, _ := o.c.Lookup(k, Source{}); return p }
func (o oursCandidate) set(k Key, p *Properties) { o.c.Store(k, Source{}, p) }

// sink keeps reads of the properties from being optimized away.
var sink atomic.Int64

func candidates(b *testing.B, capacity int) map[string]candidate {
	oc, err := otter.New(&otter.Options[Key, *entry]{MaximumSize: capacity})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { oc.StopAllGoroutines() })
	lc, err := lru.New[Key, *entry](capacity)
	if err != nil {
		b.Fatal(err)
	}
	ours := newTestCache(b, Config{MaxEntries: capacity, MaxBytes: 1 << 30, TTL: time.Hour})
	return map[string]candidate{"otter": otterCandidate{oc}, "golang-lru": lruCandidate{lc}, "golang-lru-sharded": oursCandidate{ours}}
}

var candidateNames = []string{"otter", "golang-lru", "golang-lru-sharded"}

// BenchmarkLibraryGetParallel: lookups of present keys from every core,
// over the 2,048 most recent of 32,768 entries (hot: the messages in
// flight) or over all of them (cold).
func BenchmarkLibraryGetParallel(b *testing.B) {
	const capacity = 65_536
	const n = capacity / 2 // well inside capacity: every get hits
	for _, ws := range []struct {
		name string
		size int
	}{{"hot", 2048}, {"cold", n}} {
		for _, name := range candidateNames {
			b.Run(ws.name+"/"+name, func(b *testing.B) {
				benchmarkGet(b, candidates(b, capacity)[name], n, ws.size)
			})
		}
	}
}

func benchmarkGet(b *testing.B, c candidate, n, workingSet int) {
	for i := range n {
		c.set(keyOf(i), smallProps(i))
	}
	var seed atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		sum := 0
		for pb.Next() {
			i++
			sum += c.get(keyOf(n - 1 - scatter(i, workingSet))).HeaderCount
		}
		sink.Add(int64(sum))
	})
	reportOpsPerSecond(b)
}

// BenchmarkLibrarySetParallel: inserts of new keys at capacity (each one
// evicts) from every core.
func BenchmarkLibrarySetParallel(b *testing.B) {
	const capacity = 65_536
	p := smallProps(0)
	for _, name := range candidateNames {
		b.Run(name, func(b *testing.B) {
			c := candidates(b, capacity)[name]
			var seed atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(1 << 30))
				for pb.Next() {
					i++
					c.set(keyOf(i), p)
				}
			})
			reportOpsPerSecond(b)
		})
	}
}

// BenchmarkLibraryInFlightHitRate is the server's access pattern: each
// new message stores its properties once, and the messages in flight
// (inFlight of them) each read theirs a few times. The hit rate of those
// reads is what matters; a policy that turns new entries away fails here
// however fast it is.
func BenchmarkLibraryInFlightHitRate(b *testing.B) {
	for _, shape := range []struct{ capacity, inFlight int }{{1000, 200}, {65_536, 2000}} {
		for _, name := range candidateNames {
			b.Run(fmt.Sprintf("cap=%d/inflight=%d/%s", shape.capacity, shape.inFlight, name), func(b *testing.B) {
				c := candidates(b, shape.capacity)[name]
				p := smallProps(0)
				const reads = 4
				hits, lookups := 0, 0
				for i := 0; b.Loop(); i++ {
					c.set(keyOf(i), p)
					for r := 1; r <= reads; r++ {
						if j := i - r*shape.inFlight/reads; j >= 0 {
							lookups++
							if c.get(keyOf(j)) != nil {
								hits++
							}
						}
					}
				}
				if lookups > 0 {
					b.ReportMetric(100*float64(hits)/float64(lookups), "hit%")
				}
			})
		}
	}
}
