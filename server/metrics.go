package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"

	"github.com/wasmilter/wasmilter"
	"github.com/wasmilter/wasmilter/metrics"
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

// liveGenerations are the generations not yet released: during a reload
// the old one still serves its sessions beside the new one.
func (s *Server) liveGenerations() []*generation {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	live := make([]*generation, 0, len(s.generations))
	for _, g := range s.generations {
		if !g.released() {
			live = append(live, g)
		}
	}
	return live
}

// pluginStats adds up each plugin name's counters over the live
// generations (the message chain and the delay policy), so a reload in
// progress shows one series per plugin. A reload starts a plugin's
// counters anew, which Prometheus reads as a counter reset.
func (s *Server) pluginStats() []metrics.PluginStats {
	var out []metrics.PluginStats
	index := map[string]int{}
	add := func(p *plugins.Plugin) {
		st := p.Stats()
		i, ok := index[p.Name()]
		if !ok {
			i = len(out)
			index[p.Name()] = i
			out = append(out, metrics.PluginStats{Name: p.Name(), Failures: map[string]uint64{}})
			for _, k := range plugins.FailureKinds() {
				out[i].Failures[k.String()] = 0
			}
		}
		o := &out[i]
		o.Instances += st.Instances
		o.Idle += st.Idle
		o.MaxInstances += st.MaxInstances
		o.Replacements += st.Replacements
		for k, n := range st.Failures {
			o.Failures[k.String()] += n
		}
	}
	for _, g := range s.liveGenerations() {
		for _, p := range g.chain.Plugins() {
			add(p)
		}
		if g.notices != nil {
			for _, p := range g.notices.policy.Plugins() {
				add(p)
			}
		}
	}
	return out
}

// noticeStats adds up the notifiers of the live generations.
func (s *Server) noticeStats() metrics.NoticeStats {
	var sum metrics.NoticeStats
	for _, g := range s.liveGenerations() {
		if g.notices == nil {
			continue
		}
		st := g.notices.notifier.Stats()
		sum.Sent += st.Sent
		sum.Failed += st.Failed
		sum.Suppressed += st.Suppressed
		sum.Retried += st.Retried
		sum.Expired += st.Expired
		sum.PolicyErrors += st.PolicyErrors
	}
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
