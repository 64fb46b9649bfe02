package cache

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHammer mixes every operation from many goroutines, Flush included,
// for the race detector; then, once quiet, the counters must add up and
// every served value must have belonged to the key and source asked for.
func TestHammer(t *testing.T) {
	c := newTestCache(t, Config{MaxEntries: 512, MaxBytes: 2 << 20, TTL: time.Hour, KVShare: 0.25})
	const goroutines = 8
	ops := 4000
	if testing.Short() {
		ops = 500
	}
	props := make([]*Properties, 64)
	for i := range props {
		props[i] = Parse(realisticHeader(i), ParseOptions{})
	}
	var lookups atomic.Uint64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			for range ops {
				hammerOne(t, c, rng, props, &lookups)
			}
		})
	}
	wg.Wait()
	checkCountersAddUp(t, c, lookups.Load())
}

func hammerOne(t *testing.T, c *Cache, rng *rand.Rand, props []*Properties, lookups *atomic.Uint64) {
	i := rng.IntN(2000)
	// Source j of key i: a few sources share each key, so mismatches happen.
	j := i*4 + rng.IntN(4)
	p := props[j%len(props)]
	switch op := rng.IntN(100); {
	case op < 45:
		lookups.Add(1)
		got, o := c.Lookup(keyOf(i), sourceOf(j))
		if o == Hit && got != p {
			t.Errorf("key %d source %d served properties of another message", i, j)
		}
	case op < 75:
		c.Store(keyOf(i), sourceOf(j), p)
	case op < 80:
		c.Delete(keyOf(i))
	case op < 85:
		c.Inspect(keyOf(i))
	case op < 92:
		if _, err := c.KVIncr(fmt.Sprintf("plugin%d", i%3), fmt.Sprint(i%50), 1, time.Minute); err != nil {
			t.Error(err)
		}
	case op < 96:
		if err := c.KVSet("plugin", fmt.Sprint(i%100), []byte("v"), 0); err != nil {
			t.Error(err)
		}
		c.KVGet("plugin", fmt.Sprint(i%100))
	case op < 98:
		c.KVDelete("plugin", fmt.Sprint(i%100))
	case op < 99:
		c.Stats()
	default:
		c.Flush()
	}
}
