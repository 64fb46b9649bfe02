package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NoticeStats is what the metrics read of the delay notifier at scrape
// time; the server fills it from notify.Notifier.Stats.
type NoticeStats struct {
	Sent         int64 // notices the relay accepted
	Failed       int64 // notices the relay refused for good
	Suppressed   int64 // steps not sent: the sender was over the rate limit
	Retried      int64 // sends that failed temporarily, released for a later sweep
	Expired      int64 // records the delay policy gave up
	PolicyErrors int64 // delay-hook calls that failed
}

type noticeCollector struct {
	stats func() NoticeStats

	notices, expired, policyErrors *prometheus.Desc
}

// WatchNotices exposes the delay notifier's counters from stats, read at
// each scrape.
func (m *Metrics) WatchNotices(stats func() NoticeStats) {
	m.reg.MustRegister(&noticeCollector{
		stats: stats,
		notices: prometheus.NewDesc(prometheus.BuildFQName(namespace, "notify", "notices_total"),
			"Delay notices by outcome: sent, failed (5xx, given up), suppressed (rate limit), "+
				"retried (temporary failure, sent at a later sweep).", []string{"outcome"}, nil),
		expired: prometheus.NewDesc(prometheus.BuildFQName(namespace, "notify", "expired_total"),
			"Records the delay policy gave up (expired).", nil, nil),
		policyErrors: prometheus.NewDesc(prometheus.BuildFQName(namespace, "notify", "policy_errors_total"),
			"Delay-hook calls of the delay policy that failed.", nil, nil),
	})
}

func (c *noticeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.notices
	ch <- c.expired
	ch <- c.policyErrors
}

func (c *noticeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for _, o := range []struct {
		name string
		n    int64
	}{{"sent", st.Sent}, {"failed", st.Failed}, {"suppressed", st.Suppressed}, {"retried", st.Retried}} {
		ch <- prometheus.MustNewConstMetric(c.notices, prometheus.CounterValue, float64(o.n), o.name)
	}
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(st.Expired))
	ch <- prometheus.MustNewConstMetric(c.policyErrors, prometheus.CounterValue, float64(st.PolicyErrors))
}

// ObserveSweep records one sweep of the delay notifier: how long it took,
// how many records it visited, and whether it failed.
func (m *Metrics) ObserveSweep(took time.Duration, visited int, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.sweeps.WithLabelValues(result).Inc()
	m.sweepSeconds.Observe(took.Seconds())
	m.sweepVisits.Add(float64(visited))
}
