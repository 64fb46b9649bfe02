package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of wasmilter's own.
const namespace = "wasmilter"

// BuildInfo is what wasmilter_build_info labels.
type BuildInfo struct {
	Version       string // wasmilter's
	ABIVersion    string // the plugin ABI the host speaks
	WazeroVersion string
}

// Metrics holds the registry and the metrics counted as things happen. The
// ones read from Stats at scrape time are added with the Watch methods.
type Metrics struct {
	reg *prometheus.Registry

	messages      *prometheus.CounterVec
	sessionsOpen  prometheus.Gauge
	sessionsTotal prometheus.Counter
	hookSeconds   *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	ledgerSeconds *prometheus.HistogramVec
	sweeps        *prometheus.CounterVec
	sweepSeconds  prometheus.Histogram
	sweepVisits   prometheus.Counter
}

// Buckets of the latency histograms, in seconds. A hook call of a small
// policy takes tens of microseconds and a deadline is 100 ms by default;
// a ledger write includes an fsync (or a Redis round trip).
var (
	hookBuckets   = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}
	ledgerBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}
	sweepBuckets  = []float64{1e-3, 10e-3, 100e-3, 1, 10, 60, 300}
)

// New makes the registry with the Go runtime and process collectors, the
// build info and every metric counted as things happen.
func New(b BuildInfo) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "messages_total",
		Help: "Messages by the stage where their outcome was decided and the verdict."}, []string{"stage", "verdict"})
	m.sessionsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "milter",
		Name: "sessions_open", Help: "SMTP sessions of the MTA open now."})
	m.sessionsTotal = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "milter",
		Name: "sessions_total", Help: "SMTP sessions of the MTA opened."})
	m.hookSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "plugin",
		Name: "hook_duration_seconds", Help: "Duration of plugin hook calls, waiting for an instance included.",
		Buckets: hookBuckets}, []string{"plugin", "hook"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "ledger",
		Name: "store_errors_total", Help: "Retry ledger operations of the pipeline that failed, by operation."},
		[]string{"op"})
	m.ledgerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "ledger",
		Name: "operation_duration_seconds", Help: "Duration of the pipeline's retry ledger operations.",
		Buckets: ledgerBuckets}, []string{"op"})
	m.sweeps = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "notify",
		Name: "sweeps_total", Help: "Sweeps of the delay notifier, by result (ok or error)."}, []string{"result"})
	m.sweepSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "notify",
		Name: "sweep_duration_seconds", Help: "Duration of the delay notifier's sweeps.", Buckets: sweepBuckets})
	m.sweepVisits = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "notify",
		Name: "sweep_visits_total", Help: "Records the delay notifier's sweeps visited."})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels tell the versions of wasmilter, its plugin ABI and wazero."},
		[]string{"version", "abi_version", "wazero_version"})
	build.WithLabelValues(b.Version, b.ABIVersion, b.WazeroVersion).Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.messages, m.sessionsOpen, m.sessionsTotal, m.hookSeconds, m.storeErrors, m.ledgerSeconds,
		m.sweeps, m.sweepSeconds, m.sweepVisits,
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition formats. A
// collector that fails (an unreachable ledger) costs its own metrics, not
// the whole scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer is the registry, for tests and for tools that read it directly.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// SessionOpened implements pipeline.Observer.
func (m *Metrics) SessionOpened() {
	m.sessionsOpen.Inc()
	m.sessionsTotal.Inc()
}

// SessionClosed implements pipeline.Observer.
func (m *Metrics) SessionClosed() { m.sessionsOpen.Dec() }

// Counter counts; it is what MessageCounter returns.
type Counter interface{ Inc() }

// MessageCounter implements pipeline.Observer. The pipeline asks for every
// stage and verdict once; a series appears at its first message, so the
// combinations that never happen (a discard at connect) are not exposed.
func (m *Metrics) MessageCounter(stage, verdict string) Counter {
	return &lazyCounter{vec: m.messages, labels: [2]string{stage, verdict}}
}

// lazyCounter resolves its series at the first Inc; after that an Inc is
// an atomic load and an atomic add.
type lazyCounter struct {
	once   sync.Once
	vec    *prometheus.CounterVec
	labels [2]string
	c      prometheus.Counter
}

func (l *lazyCounter) Inc() {
	l.once.Do(func() { l.c = l.vec.WithLabelValues(l.labels[:]...) })
	l.c.Inc()
}

// StoreError implements pipeline.Observer. It is rare, so the series is
// looked up each time.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// Timer records durations in seconds.
type Timer interface{ Observe(seconds float64) }

// HookTimer implements plugins.Observer: the histogram of one plugin's
// hook, resolved once at plugin load.
func (m *Metrics) HookTimer(plugin, hook string) Timer {
	return m.hookSeconds.WithLabelValues(plugin, hook)
}
