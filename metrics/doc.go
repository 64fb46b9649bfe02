// Package metrics names and exposes wasmilter's metrics for Prometheus: it
// owns one private registry (with the Go runtime and process collectors,
// not the global default registry, so nothing a library registers leaks
// in), every metric's name, labels and help, and the /metrics handler.
// docs/OPERATIONS.md lists every metric.
//
// It knows no milter wire format and no Wasm. The packages on the hot path
// do not import it: package pipeline and package plugins each define a
// small Observer interface (with a no-op default) that [Metrics]
// satisfies, and their counters are resolved once (per stage and verdict,
// per plugin and hook), so counting a message or timing a hook call is an
// atomic add, with no lookup and no allocation.
//
// What the server already counts is read at scrape time rather than counted
// twice: the property cache's and key/value store's Stats, each plugin's
// failures and instance replacements, the delay notifier's Stats, and the
// retry ledger's records per state, counted from the ledger's state index
// (see [Metrics.WatchLedger] for why that, and not counters of
// transitions).
//
// The library is github.com/prometheus/client_golang: Prometheus's own,
// well kept, and what every Prometheus user's tooling expects (exposition
// format, content negotiation, process and Go runtime metrics).
package metrics
