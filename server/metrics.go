package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/wasmilter/wasmilter"
	"github.com/wasmilter/wasmilter/metrics"
	"github.com/wasmilter/wasmilter/notify"
	"github.com/wasmilter/wasmilter/pipeline"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/stamp"
)

// pipelineObserver and hostObserver are the metrics as the pipeline and
// the plugin host see them: each of those packages defines its observer
// with its own Counter or Timer type, so that neither imports metrics.
type pipelineObserver struct{ *metrics.Metrics }

func (o pipelineObserver) MessageCounter(stage, verdict string) pipeline.Counter {
	return o.Metrics.MessageCounter(stage, verdict)
}

type hostObserver struct{ m *metrics.Metrics }

func (o hostObserver) HookTimer(plugin, hook string) plugins.Timer {
	return o.m.HookTimer(plugin, hook)
}

// Version is wasmilter's version: the -X build flag, else the module
// version `go install` records, so an installed binary reports what it was
// installed as.
func Version() string {
	if wasmilter.Version != "devel" {
		return wasmilter.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return wasmilter.Version
}

// DependencyVersion is the version of a module built into the binary, or
// "unknown".
func DependencyVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}

func buildInfo() metrics.BuildInfo {
	return metrics.BuildInfo{Version: Version(), ABIVersion: strconv.Itoa(int(abi.Version)),
		WazeroVersion: DependencyVersion("github.com/tetratelabs/wazero")}
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.shared.opts.Metrics }

// watchMetrics has m read what the server counts anyway at each scrape:
// the cache, the plugins of every live generation, the delay notifier,
// the ledger's records per state.
func (s *Server) watchMetrics(m *metrics.Metrics) {
	m.WatchCache(s.cache.Stats)
	m.WatchPlugins(s.pluginStats)
	m.WatchNotices(s.noticeStats)
	if c, ok := s.ledger.(retry.StateCounter); ok {
		m.WatchLedger(c)
	}
}

// timedLedger is the ledger as the pipeline uses it: its operations timed.
func timedLedger(sh shared) retry.Ledger {
	if sh.ledger == nil || sh.opts.Metrics == nil {
		return sh.ledger
	}
	return sh.opts.Metrics.TimeLedger(sh.ledger)
}

// retiredCounts keeps the counters of released generations once they are
// dropped from Server.generations, so that a reload does not take a
// plugin's or the notifier's counters back to zero: Prometheus would read
// that as a counter reset, and a dashboard summing increases across it
// would lose what the old generation counted. Guarded by Server.genMu.
type retiredCounts struct {
	plugins map[string]metrics.PluginStats // counters only: Failures, Replacements
	notices metrics.NoticeStats
}

// dropReleased folds the counters of every released generation into
// s.retired and returns the generations left. s.genMu must be held.
func (s *Server) dropReleased() []*generation {
	return slices.DeleteFunc(s.generations, func(g *generation) bool {
		if !g.released() {
			return false
		}
		s.retired.add(g)
		return true
	})
}

func (r *retiredCounts) add(g *generation) {
	if r.plugins == nil {
		r.plugins = make(map[string]metrics.PluginStats)
	}
	for _, p := range g.plugins() {
		c, ok := r.plugins[p.Name()]
		if !ok {
			c = newPluginStats(p.Name())
		}
		addCounters(&c, p.Stats())
		r.plugins[p.Name()] = c
	}
	if g.notices != nil {
		r.notices = addNotices(r.notices, g.notices.notifier.Stats())
	}
}

// newPluginStats is an empty entry with every failure kind at zero, so
// each kind has a series from the start.
func newPluginStats(name string) metrics.PluginStats {
	st := metrics.PluginStats{Name: name, Failures: make(map[string]uint64, len(plugins.FailureKinds()))}
	for _, k := range plugins.FailureKinds() {
		st.Failures[k.String()] = 0
	}
	return st
}

// addCounters adds a plugin's counters (not its gauges) to o.
func addCounters(o *metrics.PluginStats, st plugins.PluginStats) {
	o.Replacements += st.Replacements
	for k, n := range st.Failures {
		o.Failures[k.String()] += n
	}
}

// plugins are the generation's plugins: the message chain's and the delay
// policy's.
func (g *generation) plugins() []*plugins.Plugin {
	all := g.chain.Plugins()
	if g.notices != nil {
		all = append(slices.Clone(all), g.notices.policy.Plugins()...)
	}
	return all
}

// countedGenerations returns, under one lock, the generations whose
// counters are still read from their plugins, and copies of the counters
// of those already dropped, by plugin name: together every count, none
// twice.
func (s *Server) countedGenerations() ([]*generation, []metrics.PluginStats, metrics.NoticeStats) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	retired := make([]metrics.PluginStats, 0, len(s.retired.plugins))
	for _, c := range s.retired.plugins {
		c.Failures = maps.Clone(c.Failures)
		retired = append(retired, c)
	}
	slices.SortFunc(retired, func(a, b metrics.PluginStats) int { return strings.Compare(a.Name, b.Name) })
	return slices.Clone(s.generations), retired, s.retired.notices
}

// pluginStats adds up each plugin name's numbers over the generations: the
// counters over every generation the server has had (those released and
// dropped included, so a reload never takes a counter back), the gauges
// (instances) over the live ones only. During a reload the old and the
// new generation show as one series per plugin.
func (s *Server) pluginStats() []metrics.PluginStats {
	gens, out, _ := s.countedGenerations()
	index := make(map[string]int, len(out))
	for i, o := range out {
		index[o.Name] = i
	}
	for _, g := range gens {
		live := !g.released()
		for _, p := range g.plugins() {
			i, ok := index[p.Name()]
			if !ok {
				i = len(out)
				index[p.Name()] = i
				out = append(out, newPluginStats(p.Name()))
			}
			st := p.Stats()
			if live {
				out[i].Instances += st.Instances
				out[i].Idle += st.Idle
				out[i].MaxInstances += st.MaxInstances
			}
			addCounters(&out[i], st)
		}
	}
	return out
}

// noticeStats adds up the notifiers of every generation the server has
// had, for the same reason.
func (s *Server) noticeStats() metrics.NoticeStats {
	gens, _, sum := s.countedGenerations()
	for _, g := range gens {
		if g.notices != nil {
			sum = addNotices(sum, g.notices.notifier.Stats())
		}
	}
	return sum
}

func addNotices(sum metrics.NoticeStats, st notify.Stats) metrics.NoticeStats {
	sum.Sent += st.Sent
	sum.Failed += st.Failed
	sum.Suppressed += st.Suppressed
	sum.Retried += st.Retried
	sum.Expired += st.Expired
	sum.PolicyErrors += st.PolicyErrors
	return sum
}

// Ready reports whether the server serves mail: the milter listener is
// open (Serve runs and no shutdown began), the plugins are loaded, and the
// retry ledger answers. The ledger is asked for the record of the zero
// identity, which no message has: a store that answers "not found" is
// reachable, whatever it holds.
func (s *Server) Ready(ctx context.Context) error {
	if !s.listening.Load() {
		return errors.New("the milter listener is not open (starting or shutting down)")
	}
	if g := s.currentGeneration(); g == nil || g.released() {
		return errors.New("no plugins loaded")
	}
	if s.ledger == nil {
		return nil
	}
	if _, err := s.ledger.Get(ctx, stamp.Identity{}); err != nil && !errors.Is(err, retry.ErrNotFound) {
		return fmt.Errorf("retry ledger unreachable: %w", err)
	}
	return nil
}
