package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmilter/wasmilter/cache"
)

// cacheCollector reads the cache's Stats at scrape time: the cache counts
// under the locks it takes anyway, so counting again here would only cost
// the hot path twice.
type cacheCollector struct {
	stats func() cache.Stats

	entries, bytes, maxEntries, maxBytes       *prometheus.Desc
	hits, misses, mismatches, stored, tooLarge *prometheus.Desc
	evictions, removed                         *prometheus.Desc
}

// WatchCache exposes the header property cache and the plugins' key/value
// store (label table="properties" or "kv") from stats, read at each scrape.
func (m *Metrics) WatchCache(stats func() cache.Stats) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "cache", name), help,
			append([]string{"table"}, labels...), nil)
	}
	m.reg.MustRegister(&cacheCollector{
		stats:      stats,
		entries:    d("entries", "Entries in the table now."),
		bytes:      d("bytes", "Accounted bytes of the table's entries now."),
		maxEntries: d("max_entries", "The table's entry limit (0: bounded by bytes only)."),
		maxBytes:   d("max_bytes", "The table's share of the byte budget."),
		hits:       d("hits_total", "Lookups that found their entry."),
		misses:     d("misses_total", "Lookups that found nothing."),
		mismatches: d("mismatches_total", "Property lookups that found an entry computed from another header (dropped, never served)."),
		stored:     d("stored_total", "Inserts and replacements accepted."),
		tooLarge:   d("rejected_too_large_total", "Single items larger than the whole budget, not stored."),
		evictions:  d("evictions_total", "Entries pushed out by the entry or byte limit."),
		removed:    d("removed_total", "Entries that left the table, by reason.", "reason"),
	})
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.bytes, c.maxEntries, c.maxBytes, c.hits, c.misses,
		c.mismatches, c.stored, c.tooLarge, c.evictions, c.removed} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	c.table(ch, "properties", st.Properties)
	c.table(ch, "kv", st.KV)
}

func (c *cacheCollector) table(ch chan<- prometheus.Metric, name string, t cache.TableStats) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
	}
	gauge(c.entries, float64(t.Entries))
	gauge(c.bytes, float64(t.Bytes))
	gauge(c.maxEntries, float64(t.MaxEntries))
	gauge(c.maxBytes, float64(t.MaxBytes))
	counter(c.hits, t.Hits)
	counter(c.misses, t.Misses)
	counter(c.mismatches, t.Mismatches)
	counter(c.stored, t.Stored)
	counter(c.tooLarge, t.RejectedTooLarge)
	counter(c.evictions, t.Removed.Evicted())
	r := t.Removed
	for _, reason := range []struct {
		name string
		n    uint64
	}{{"capacity", r.Capacity}, {"bytes", r.Bytes}, {"expired", r.Expired}, {"flushed", r.Flushed},
		{"mismatch", r.Mismatch}, {"deleted", r.Deleted}, {"replaced", r.Replaced}} {
		counter(c.removed, reason.n, reason.name)
	}
}
