package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Bounds of counting the ledger at scrape time.
const (
	// ledgerCountTimeout bounds one count: an unreachable Redis costs a
	// scrape this long at most, not the client's dial timeout.
	ledgerCountTimeout = 2 * time.Second
	// ledgerCountEvery: counts younger than this are served again, so
	// several Prometheus servers scraping often walk the index once.
	ledgerCountEvery = 10 * time.Second
)

// ledgerCollector counts the records per state from the ledger's state
// index when scraped.
//
// Why count and not keep counters of transitions: the ledger outlives the
// process (a bbolt file) and is shared by several nodes (Redis), so
// counters kept by one process would start at zero at every restart and
// never see the other nodes' changes; admin purges and the janitor would
// need counting too. The state index is the truth for every node, and
// counting it is cheap: bbolt walks keys of ~30 bytes without decoding a
// record (100,000 records in 7.5 ms, retry's BenchmarkBoltCountByState) in
// a read transaction that blocks no writer, and Redis answers one ZCARD
// per state in O(1). What is left is
// bounded: at most one count per ledgerCountEvery, each cut off after
// ledgerCountTimeout. Ledger.List per state would decode every record
// (header included): that is what this avoids.
type ledgerCollector struct {
	counter retry.StateCounter

	records, up *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts map[retry.State]int
	err    error
}

// WatchLedger exposes the ledger's records per state (counted at scrape
// time, see ledgerCollector) and whether the count succeeded.
func (m *Metrics) WatchLedger(c retry.StateCounter) {
	m.reg.MustRegister(&ledgerCollector{
		counter: c,
		records: prometheus.NewDesc(prometheus.BuildFQName(namespace, "ledger", "records"),
			"Retry ledger records by state, counted from the state index (all nodes sharing the ledger).",
			[]string{"state"}, nil),
		up: prometheus.NewDesc(prometheus.BuildFQName(namespace, "ledger", "up"),
			"1 when the retry ledger answered the last count, 0 when it failed.", nil, nil),
	})
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.up
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range retry.States {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// count returns a count at most ledgerCountEvery old. Concurrent scrapes
// wait for one count rather than each starting their own.
func (c *ledgerCollector) count() (map[retry.State]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < ledgerCountEvery {
		return c.counts, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerCountTimeout)
	defer cancel()
	c.counts, c.err = c.counter.CountByState(ctx)
	c.at = time.Now()
	return c.counts, c.err
}

// TimeLedger returns l with the pipeline's operations (get, defer, pass,
// expire) timed into wasmilter_ledger_operation_duration_seconds. The
// histograms are resolved here, so timing an operation is two clock reads
// and an atomic add. The other operations pass through untimed.
func (m *Metrics) TimeLedger(l retry.Ledger) retry.Ledger {
	return &timedLedger{Ledger: l, get: m.ledgerSeconds.WithLabelValues("get"),
		deferOp: m.ledgerSeconds.WithLabelValues("defer"), pass: m.ledgerSeconds.WithLabelValues("pass"),
		expire: m.ledgerSeconds.WithLabelValues("expire")}
}

type timedLedger struct {
	retry.Ledger
	get, deferOp, pass, expire prometheus.Observer
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (t *timedLedger) Get(ctx context.Context, id stamp.Identity) (retry.Record, error) {
	defer since(t.get, time.Now())
	return t.Ledger.Get(ctx, id)
}

func (t *timedLedger) Defer(ctx context.Context, d retry.Deferral) (retry.Record, error) {
	defer since(t.deferOp, time.Now())
	return t.Ledger.Defer(ctx, d)
}

func (t *timedLedger) Pass(ctx context.Context, id stamp.Identity, a retry.Attempt) (retry.Record, error) {
	defer since(t.pass, time.Now())
	return t.Ledger.Pass(ctx, id, a)
}

func (t *timedLedger) Expire(ctx context.Context, id stamp.Identity, at time.Time, r retry.Reason) (retry.Record, error) {
	defer since(t.expire, time.Now())
	return t.Ledger.Expire(ctx, id, at, r)
}
