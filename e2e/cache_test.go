package e2e

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestPostfixCacheEvictsAndNeverWedges: the incident's cache wedged once
// full. With a 100-entry property cache, 1,000 distinct messages through a
// real Postfix are all delivered, the cache evicts (it never refuses), stays
// within its bounds, and the server's memory does not grow with the count.
func TestPostfixCacheEvictsAndNeverWedges(t *testing.T) {
	f := startFilter(t, "[cache]\nmax_entries = 100\nmax_bytes = \"1MiB\"\n")
	pf, sink := postfixWith(t, f)

	const total = 1000
	c, err := smtp.Dial(pf.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("bulk.wasmilter.test"); err != nil {
		t.Fatal(err)
	}
	var heapAt200 uint64
	for i := 0; i < total; i++ {
		sendOne(t, c, i)
		if i == 199 {
			heapAt200 = settledHeap()
		}
	}
	got := sink.Wait(t, total, 3*time.Minute)
	for _, r := range got {
		if !strings.Contains(string(r.Data), "X-Wasmilter-Stamp:") {
			t.Fatalf("a message arrived unstamped:\n%s", r.Data)
		}
	}
	st := f.srv.Cache().Stats().Properties
	if st.Misses != total || st.Entries > 100 || st.Bytes > st.MaxBytes {
		t.Errorf("cache after %d distinct messages: %+v: want %d misses, at most 100 entries within its bytes", total, st, total)
	}
	if evicted := st.Removed.Evicted(); evicted < 900 {
		t.Errorf("%d evictions, want at least 900: the cache must evict, not refuse", evicted)
	}
	if st.Stored-st.Removed.Total() != uint64(st.Entries) || st.RejectedTooLarge != 0 {
		t.Errorf("counters do not add up: %+v", st)
	}
	// Flat memory: 800 more messages may not grow the heap by more than a
	// few MiB (a cache that kept every entry would hold ~800 x 0.7 KiB more,
	// and a leak per message far more).
	if growth := int64(settledHeap()) - int64(heapAt200); growth > 8<<20 {
		t.Errorf("heap grew by %d KiB between message 200 and %d", growth>>10, total)
	}
	t.Logf("cache: %d entries, %d bytes, %d evicted, %d misses", st.Entries, st.Bytes, st.Removed.Evicted(), st.Misses)
}

func sendOne(t *testing.T, c *smtp.Client, i int) {
	t.Helper()
	if err := c.Mail("alice@example.org", nil); err != nil {
		t.Fatalf("message %d: MAIL: %v", i, err)
	}
	if err := c.Rcpt("bob@example.net", nil); err != nil {
		t.Fatalf("message %d: RCPT: %v", i, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("message %d: DATA: %v", i, err)
	}
	fmt.Fprintf(w, "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bulk %d\r\nMessage-ID: <bulk-%d.%d@example.org>\r\n\r\nbody %d\r\n",
		i, i, time.Now().UnixNano(), i)
	if err := w.Close(); err != nil {
		t.Fatalf("message %d: end of data: %v", i, err)
	}
}

func settledHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
