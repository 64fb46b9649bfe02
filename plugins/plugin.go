package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Plugin is a loaded plugin: a wazero runtime with its compiled module
// (shared with plugins of the same module and memory cap, see
// sharedRuntime) and a bounded pool of initialized instances of its own.
// It is safe for concurrent use; each instance serves one call at a time.
type Plugin struct {
	host     *Host
	spec     Spec
	logger   *slog.Logger
	shared   *sharedRuntime
	live     liveInstances // every instance not yet closed
	config   []byte        // the encoded Spec.Config, handed to every instance's init
	hooks    abi.HookSet
	features abi.Feature

	// The pool: slots holds one token per live instance (busy, idle or being
	// created), so its capacity is the bound; idle holds the free ones.
	slots chan struct{}
	idle  chan *instance

	// lifecycle: calls and background replacements hold inflight; Close
	// waits for them before closing the runtime.
	lifecycle sync.RWMutex
	closed    bool
	inflight  sync.WaitGroup

	mem guestMemory // the instances' linear memories

	stats  pluginCounters
	timers [abi.NumHooks]Timer // per hook, resolved at Load (see Observer)
}

type pluginCounters struct {
	calls        atomic.Uint64
	failures     [numFailureKinds]atomic.Uint64
	replacements atomic.Uint64
}

// PluginStats is a snapshot of a plugin's pool and call counters.
type PluginStats struct {
	Instances    int // live: busy, idle or being created
	Idle         int
	MaxInstances int
	Calls        uint64                 // hook calls attempted
	Failures     map[FailureKind]uint64 // only kinds that happened
	Replacements uint64                 // instances created to replace discarded ones
}

func newPlugin(h *Host, spec Spec, sr *sharedRuntime) *Plugin {
	return &Plugin{
		host:   h,
		spec:   spec,
		logger: h.logger,
		shared: sr,
		config: abi.AppendConfig(nil, spec.Config),
		slots:  make(chan struct{}, spec.MaxInstances),
		idle:   make(chan *instance, spec.MaxInstances),
	}
}

// Name returns the plugin's configured name.
func (p *Plugin) Name() string { return p.spec.Name }

// Hooks returns the hooks the plugin implements: its exported hook functions,
// narrowed by the Hooks of its init answer when it set any.
func (p *Plugin) Hooks() abi.HookSet { return p.hooks }

// Features returns what the plugin asked for in its init answer.
func (p *Plugin) Features() abi.Feature { return p.features }

// Spec returns the plugin's spec with defaults filled in (Timeout,
// MemoryLimit rounded to pages, MaxInstances).
func (p *Plugin) Spec() Spec { return p.spec }

// Stats returns a snapshot of the plugin's counters.
func (p *Plugin) Stats() PluginStats {
	s := PluginStats{
		Instances:    len(p.slots),
		Idle:         len(p.idle),
		MaxInstances: p.spec.MaxInstances,
		Calls:        p.stats.calls.Load(),
		Failures:     make(map[FailureKind]uint64),
		Replacements: p.stats.replacements.Load(),
	}
	for k := range p.stats.failures {
		if n := p.stats.failures[k].Load(); n > 0 {
			s.Failures[FailureKind(k)] = n
		}
	}
	return s
}

// Close stops the plugin: new calls fail as unavailable, calls in flight
// finish (until ctx ends), then the runtime and every instance are closed.
func (p *Plugin) Close(ctx context.Context) error {
	p.lifecycle.Lock()
	if p.closed {
		p.lifecycle.Unlock()
		return nil
	}
	p.closed = true
	p.lifecycle.Unlock()
	p.host.forget(p)

	drained := make(chan struct{})
	go func() { p.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done(): // closing the instances below stops the stragglers
	}
	err := p.closeInstancesAndRuntime(context.WithoutCancel(ctx))
	p.releaseMemory(drained)
	if err != nil {
		return fmt.Errorf("plugin %q: close: %w", p.spec.Name, err)
	}
	return nil
}

// closeInstancesAndRuntime closes every instance of the plugin (wazero
// then frees their memories into p.mem) and drops its use of the runtime,
// which closes with its last plugin.
func (p *Plugin) closeInstancesAndRuntime(ctx context.Context) error {
	p.live.closeAll(ctx)
	return p.host.releaseRuntime(ctx, p.shared)
}

// releaseMemory unmaps the guests' memories once no call is in flight: at
// once if the calls drained, else when the last straggler has stopped.
func (p *Plugin) releaseMemory(drained <-chan struct{}) {
	select {
	case <-drained:
		p.mem.release()
	default:
		go func() {
			<-drained
			p.mem.release()
		}()
	}
}

// enter registers work that Close must wait for; false once closed.
func (p *Plugin) enter() bool {
	p.lifecycle.RLock()
	defer p.lifecycle.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// adopt pools an instance created outside the pool (the one Load made).
func (p *Plugin) adopt(inst *instance) {
	p.slots <- struct{}{}
	p.idle <- inst
}

// get returns an idle instance, or creates one while fewer than MaxInstances
// live, or waits for one to come back.
//
// When every instance is busy it waits at most one hook timeout: a busy
// instance is released within its own deadline. Creating an instance has
// its own bound (initTimeout), independent of the hook's deadline.
func (p *Plugin) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	wait := time.NewTimer(p.spec.Timeout)
	defer wait.Stop()
	select {
	case inst := <-p.idle:
		return inst, nil
	case p.slots <- struct{}{}:
		initCtx, cancel := context.WithTimeout(ctx, initTimeout)
		defer cancel()
		inst, _, err := p.newInstance(initCtx)
		if err != nil {
			<-p.slots
			return nil, fmt.Errorf("new instance: %w", err)
		}
		return inst, nil
	case <-wait.C:
		return nil, fmt.Errorf("all %d instances busy for %s", p.spec.MaxInstances, p.spec.Timeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for an instance: %w", context.Cause(ctx))
	}
}

// put returns a healthy instance to the pool.
func (p *Plugin) put(inst *instance) { p.idle <- inst }

// discard closes an instance that failed (its runtime state is no longer
// trustworthy after a trap, an OOM or a deadline) and starts a replacement
// in the background so the next call does not pay for instantiation.
func (p *Plugin) discard(inst *instance) {
	p.live.remove(inst)
	_ = inst.mod.Close(context.Background())
	<-p.slots
	if !p.enter() {
		return
	}
	go func() {
		defer p.inflight.Done()
		p.replace()
	}()
}

func (p *Plugin) replace() {
	select {
	case p.slots <- struct{}{}:
	default:
		return // the pool refilled meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	inst, _, err := p.newInstance(ctx)
	if err != nil {
		<-p.slots
		p.logger.Error("plugin instance replacement failed", "plugin", p.spec.Name, "err", err)
		return
	}
	p.stats.replacements.Add(1)
	p.idle <- inst
}
