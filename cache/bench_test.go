package cache

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// reportOpsPerSecond adds the throughput the issue asks for (ops/s over
// all goroutines) to a benchmark's output.
func reportOpsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// scatter maps the i-th access to a key number in [0, n) in an order
// unrelated to insertion: messages are not read in the order they came,
// and a sequential walk flatters an LRU (the list neighbours it touches
// were touched just before, so they are in the CPU cache).
func scatter(i, n int) int { return int(uint64(i) * 0x9E3779B97F4A7C15 >> 1 % uint64(n)) }

// filledCache returns a default cache holding n realistic entries.
func filledCache(b *testing.B, n int) *Cache {
	c := newTestCache(b, DefaultConfig())
	p := Parse(realisticHeader(0), ParseOptions{})
	for i := range n {
		c.Store(keyOf(i), sourceOf(i), p)
	}
	return c
}

// sourcesFor precomputes sources so benchmarks time the cache, not SHA-256.
func sourcesFor(n int) []Source {
	s := make([]Source, n)
	for i := range s {
		s[i] = sourceOf(i)
	}
	return s
}

// BenchmarkLookupParallel reads from a cache holding 50,000 entries. "hot"
// reads the 2,048 most recent entries, like the messages in flight on a
// busy server; "cold" reads all of them in scattered order, so nearly
// every read misses the CPU cache.
func BenchmarkLookupParallel(b *testing.B) {
	const n = 50_000 // most of the 65,536 default; no shard is full
	c := filledCache(b, n)
	srcs := sourcesFor(n)
	for _, ws := range []struct {
		name string
		size int
	}{{"hot", 2048}, {"cold", n}} {
		b.Run(ws.name, func(b *testing.B) {
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					i++
					k := n - 1 - scatter(i, ws.size)
					if _, o := c.Lookup(keyOf(k), srcs[k]); o != Hit {
						b.Errorf("key %d: %v", k, o)
						return
					}
				}
			})
			reportOpsPerSecond(b)
		})
	}
}

func BenchmarkStoreParallel(b *testing.B) {
	c := newTestCache(b, DefaultConfig())
	p := Parse(realisticHeader(0), ParseOptions{})
	srcs := sourcesFor(1 << 18) // four times the capacity: stores evict
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1 << 16))
		for pb.Next() {
			i++
			k := i & (1<<18 - 1)
			c.Store(keyOf(k), srcs[k], p)
		}
	})
	reportOpsPerSecond(b)
}

// BenchmarkParseAndStore20Headers is the per-message cost on a miss:
// hash the header, look up, parse, store.
func BenchmarkParseAndStore20Headers(b *testing.B) {
	const distinct = 1024
	messages := make([][]Field, distinct)
	for i := range messages {
		messages[i] = realisticHeader(i)
	}
	c := newTestCache(b, DefaultConfig())
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		fields := messages[i%distinct]
		key := keyOf(i) // a new message each time: always the miss path
		src := SourceOf(fields)
		if _, o := c.Lookup(key, src); o == Hit {
			b.Fatal("unexpected hit")
		}
		c.Store(key, src, Parse(fields, ParseOptions{}))
	}
}

func BenchmarkParse20Headers(b *testing.B) {
	fields := realisticHeader(1)
	b.ReportAllocs()
	for b.Loop() {
		Parse(fields, ParseOptions{})
	}
}

func BenchmarkSourceOf20Headers(b *testing.B) {
	fields := realisticHeader(1)
	n := 0
	for _, f := range fields {
		n += len(f.Name) + len(f.Value)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		SourceOf(fields)
	}
}

func BenchmarkKVGetParallel(b *testing.B) {
	c := newTestCache(b, DefaultConfig())
	const n = 10_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("sender-%d@example.net", i)
		if err := c.KVSet("greylist", keys[i], []byte("2026-11-22T07:00:00Z"), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if _, ok := c.KVGet("greylist", keys[i%n]); !ok {
				b.Error("miss")
				return
			}
		}
	})
	reportOpsPerSecond(b)
}

func BenchmarkKVIncrParallel(b *testing.B) {
	c := newTestCache(b, DefaultConfig())
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("192.0.2.%d", i)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i++
			if _, err := c.KVIncr("ratelimit", keys[i%n], 1, time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOpsPerSecond(b)
}
