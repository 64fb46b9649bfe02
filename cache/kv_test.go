package cache

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKVSetGetDelete(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	value := []byte("hello")
	if err := c.KVSet("greylist", "k", value, time.Minute); err != nil {
		t.Fatal(err)
	}
	value[0] = 'J' // the store keeps its own copy
	got, ok := c.KVGet("greylist", "k")
	if !ok || string(got) != "hello" {
		t.Fatalf("KVGet = %q, %v; want the value as set", got, ok)
	}
	got[0] = 'Y' // and hands out copies
	if again, _ := c.KVGet("greylist", "k"); string(again) != "hello" {
		t.Fatalf("a reader changed the stored value: %q", again)
	}
	if _, ok := c.KVGet("ratelimit", "k"); ok {
		t.Error("namespaces are not separate")
	}
	if !c.KVDelete("greylist", "k") || c.KVDelete("greylist", "k") {
		t.Error("KVDelete should report true once, then false")
	}
	if _, ok := c.KVGet("greylist", "k"); ok {
		t.Error("deleted key still readable")
	}
	checkCountersAddUp(t, c, 0)
}

func TestKVNamespacesCannotCollide(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	// Joined naively, ("a", "b\x00c") and ("a\x00b", "c") would be one key;
	// a namespace with NUL is refused instead.
	if err := c.KVSet("a", "b\x00c", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.KVSet("a\x00b", "c", []byte("2"), 0); !errors.Is(err, ErrBadNamespace) {
		t.Fatalf("namespace with NUL: %v, want ErrBadNamespace", err)
	}
}

func TestKVBadInput(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	tests := []struct {
		ns, key string
		want    error
	}{
		{"", "k", ErrBadNamespace},
		{strings.Repeat("n", MaxNamespaceLen+1), "k", ErrBadNamespace},
		{"ns", "", ErrBadKey},
		{"ns", strings.Repeat("k", MaxKVKeyLen+1), ErrBadKey},
	}
	for _, tc := range tests {
		if err := c.KVSet(tc.ns, tc.key, nil, 0); !errors.Is(err, tc.want) {
			t.Errorf("KVSet(%.10q, %.10q) = %v, want %v", tc.ns, tc.key, err, tc.want)
		}
		if _, err := c.KVIncr(tc.ns, tc.key, 1, 0); !errors.Is(err, tc.want) {
			t.Errorf("KVIncr(%.10q, %.10q) = %v, want %v", tc.ns, tc.key, err, tc.want)
		}
		if len(tc.key) > 100 {
			if err := c.KVSet(tc.ns, tc.key, nil, 0); len(err.Error()) > 200 {
				t.Errorf("error quotes the whole key: %d bytes", len(err.Error()))
			}
		}
	}
}

func TestKVTooLarge(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	_, kvMax := c.MaxItemBytes()
	err := c.KVSet("ns", "big", make([]byte, kvMax), 0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("KVSet of %d bytes: %v, want ErrTooLarge", kvMax, err)
	}
	if err := c.KVSet("ns", "small", make([]byte, 1000), 0); err != nil {
		t.Fatalf("a normal item after a rejection: %v", err)
	}
	if s := c.Stats().KV; s.RejectedTooLarge != 1 || s.Entries != 1 {
		t.Errorf("KV stats %+v, want 1 rejected and 1 entry", s)
	}
}

func TestKVDisabled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KVShare = 0
	c := newTestCache(t, cfg)
	if err := c.KVSet("ns", "k", []byte("v"), 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("KVSet without a KV share: %v, want ErrTooLarge", err)
	}
	if _, err := c.KVIncr("ns", "k", 1, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("KVIncr without a KV share: %v, want ErrTooLarge", err)
	}
	if _, ok := c.KVGet("ns", "k"); ok || c.KVDelete("ns", "k") {
		t.Error("KV without a share should hold nothing")
	}
}

func TestKVIncr(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	for i, want := range []int64{5, 7, -3} {
		delta := []int64{5, 2, -10}[i]
		got, err := c.KVIncr("rate", "sender@example.net", delta, time.Hour)
		if err != nil || got != want {
			t.Fatalf("KVIncr #%d = %d, %v; want %d", i+1, got, err, want)
		}
	}
	if v, _ := c.KVGet("rate", "sender@example.net"); string(v) != "-3" {
		t.Errorf("counter reads %q, want decimal text -3", v)
	}

	if err := c.KVSet("rate", "text", []byte("not a number"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVIncr("rate", "text", 1, 0); !errors.Is(err, ErrNotInteger) {
		t.Errorf("KVIncr of text: %v, want ErrNotInteger", err)
	}
	if v, _ := c.KVGet("rate", "text"); string(v) != "not a number" {
		t.Errorf("a failed KVIncr changed the value to %q", v)
	}

	if _, err := c.KVIncr("rate", "big", math.MaxInt64, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVIncr("rate", "big", 1, 0); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflowing KVIncr: %v, want ErrOverflow", err)
	}
	if _, err := c.KVIncr("rate", "small", math.MinInt64, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVIncr("rate", "small", -1, 0); !errors.Is(err, ErrOverflow) {
		t.Errorf("underflowing KVIncr: %v, want ErrOverflow", err)
	}
	checkCountersAddUp(t, c, 0)
}

func TestKVIncrIsAtomic(t *testing.T) {
	c := newTestCache(t, DefaultConfig())
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := c.KVIncr("rate", "shared", 1, 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v, _ := c.KVGet("rate", "shared"); string(v) != fmt.Sprint(goroutines*each) {
		t.Errorf("counter = %s after %d increments", v, goroutines*each)
	}
}

// TestKVTTL: a value lives for its TTL; a counter's increments keep the
// expiry it was created with (a fixed window), while KVSet starts anew.
func TestKVTTL(t *testing.T) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.Clock = clock.Now
	c := newTestCache(t, cfg)

	if _, err := c.KVIncr("rate", "window", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.KVSet("grey", "seen", []byte("1"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second)
	if n, _ := c.KVIncr("rate", "window", 1, 10*time.Second); n != 2 {
		t.Fatalf("counter = %d, want 2", n)
	}
	if err := c.KVSet("grey", "seen", []byte("2"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second) // 11 s after creation, 5 s after the KVSet
	if _, ok := c.KVGet("rate", "window"); ok {
		t.Error("counter outlived the window it was created with")
	}
	if v, ok := c.KVGet("grey", "seen"); !ok || string(v) != "2" {
		t.Errorf("re-set value = %q, %v; KVSet should restart the TTL", v, ok)
	}
	if n, _ := c.KVIncr("rate", "window", 1, 10*time.Second); n != 1 {
		t.Errorf("counter after expiry = %d, want a new window starting at 1", n)
	}
	clock.Advance(time.Minute)
	if s := c.Stats().KV; s.Entries != 0 || s.Removed.Expired < 2 {
		t.Errorf("after everything expired: %+v", s)
	}
	checkCountersAddUp(t, c, 0)
}

// TestKVChurnStaysWithinShare fills the KV share ten times over: no write
// fails, and the KV never takes more than its share.
func TestKVChurnStaysWithinShare(t *testing.T) {
	c := newTestCache(t, Config{MaxEntries: 1000, MaxBytes: 4 << 20, TTL: time.Hour, KVShare: 0.25})
	value := make([]byte, 200)
	perEntry := kvSize("ns\x00key-000000", value)
	n := int(10 * c.kvBudget / perEntry)
	for i := range n {
		if err := c.KVSet("ns", fmt.Sprintf("key-%06d", i), value, 0); err != nil {
			t.Fatalf("write %d refused: %v", i, err)
		}
		if i%1000 == 0 {
			if s := c.kv.stats(); s.Bytes > c.kvBudget {
				t.Fatalf("after %d writes KV holds %d bytes, over its share %d", i, s.Bytes, c.kvBudget)
			}
		}
	}
	s := c.Stats()
	if s.KV.Removed.Bytes == 0 || s.KV.Bytes > c.kvBudget || s.Properties.Bytes != 0 {
		t.Errorf("after churn: %+v", s)
	}
	checkCountersAddUp(t, c, 0)
}
