package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// sharedRuntime is a wazero runtime with one compiled module in it, shared
// by every plugin that loads the same module bytes with the same memory
// limit: the builtins (one module, plugins/builtin/builtins), the same
// example loaded twice with different configs, or a plugin and its
// successor during a reload.
//
// Why share: loading a module decodes and validates all of its functions,
// even on a compilation-cache hit, and a Go guest has ~2,000 of them; that
// is most of a start (docs/BENCHMARKS.md). A CompiledModule can only be
// instantiated in the runtime that compiled it, and the memory limit is a
// runtime setting, hence the key. Plugins stay apart inside it: every
// instance is its own module instance with its own memory (from its
// plugin's guestMemory), and the host functions serve whichever plugin's
// instance is calling (pluginOf), never the one that happened to create
// the runtime.
type sharedRuntime struct {
	key      runtimeKey
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	exported abi.HookSet // the hooks the module exports, checked against the ABI

	ready chan struct{} // closed once rt, compiled and err are set
	err   error
	refs  int // plugins using it (and loads waiting for it); guarded by Host.mu
}

type runtimeKey struct {
	module [sha256.Size]byte
	pages  uint32
}

// acquireRuntime returns the runtime for spec's module and memory limit,
// building it if no plugin uses one yet. Concurrent loads of the same
// module wait for the first to build it. Every successful call must be
// paired with releaseRuntime.
func (h *Host) acquireRuntime(ctx context.Context, spec Spec) (*sharedRuntime, error) {
	key := runtimeKey{module: sha256.Sum256(spec.Wasm), pages: uint32(spec.MemoryLimit / wasmPageSize)}
	h.mu.Lock()
	if h.runtimes == nil {
		h.runtimes = make(map[runtimeKey]*sharedRuntime)
	}
	sr, found := h.runtimes[key]
	if !found {
		sr = &sharedRuntime{key: key, ready: make(chan struct{})}
		h.runtimes[key] = sr
	}
	sr.refs++
	h.mu.Unlock()

	if found {
		<-sr.ready
	} else {
		sr.err = h.buildRuntime(ctx, sr, spec.Wasm)
		if sr.err != nil {
			h.forgetRuntime(sr) // loads from now on try again
		}
		close(sr.ready)
	}
	if sr.err != nil {
		h.releaseRuntime(context.WithoutCancel(ctx), sr)
		return nil, sr.err
	}
	return sr, nil
}

// buildRuntime creates the runtime, compiles the module, checks its
// exports and provides WASI and the host module.
func (h *Host) buildRuntime(ctx context.Context, sr *sharedRuntime, wasm []byte) (err error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(sr.key.pages).
		WithCloseOnContextDone(true))
	defer func() {
		if err != nil {
			_ = rt.Close(context.WithoutCancel(ctx))
		}
	}()
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	exported, err := checkExports(compiled)
	if err != nil {
		return err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		return fmt.Errorf("instantiate host functions: %w", err)
	}
	sr.rt, sr.compiled, sr.exported = rt, compiled, exported
	return nil
}

// forgetRuntime takes sr out of the map, so that the next load of its
// module builds a new runtime; users that hold it keep it.
func (h *Host) forgetRuntime(sr *sharedRuntime) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.runtimes[sr.key] == sr {
		delete(h.runtimes, sr.key)
	}
}

// releaseRuntime drops one use; the last one closes the runtime. Its
// plugin must have closed its own instances first.
func (h *Host) releaseRuntime(ctx context.Context, sr *sharedRuntime) error {
	h.mu.Lock()
	sr.refs--
	last := sr.refs == 0
	if last && h.runtimes[sr.key] == sr {
		delete(h.runtimes, sr.key)
	}
	h.mu.Unlock()
	if !last || sr.rt == nil {
		return nil
	}
	return sr.rt.Close(ctx)
}

// errPluginClosed: an instance was created for a plugin that closed
// meanwhile.
var errPluginClosed = errors.New("plugin closed")

// errOutsideCall: a host function ran with no call context, which the
// host never lets happen (instances start with no start functions, and
// every guest entry goes through a call context).
var errOutsideCall = errors.New("host function called outside a plugin call")

// pluginOf is the plugin whose instance is running on ctx.
func pluginOf(ctx context.Context) *Plugin {
	cc := callFrom(ctx)
	if cc == nil || cc.inst == nil {
		panic(errOutsideCall) // wazero turns it into a trap of the guest
	}
	return cc.inst.plugin
}

// liveInstances tracks a plugin's module instances, so that Close can close
// them all (the runtime, shared, stays open for the others).
type liveInstances struct {
	mu     sync.Mutex
	set    map[*instance]struct{}
	closed bool // closeAll ran: instances created since are closed at once
}

// add records a new instance; false (and the instance closed) when the
// plugin closed its instances already, as when a background replacement
// finishes after a Close that stopped waiting for it.
func (l *liveInstances) add(inst *instance) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = inst.mod.Close(context.Background())
		return false
	}
	defer l.mu.Unlock()
	if l.set == nil {
		l.set = make(map[*instance]struct{})
	}
	l.set[inst] = struct{}{}
	return true
}

func (l *liveInstances) remove(inst *instance) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, inst)
}

// closeAll closes every instance still live, busy ones included: a call
// running in one then stops with an error, as when a runtime closes.
func (l *liveInstances) closeAll(ctx context.Context) {
	l.mu.Lock()
	all := l.set
	l.set, l.closed = nil, true
	l.mu.Unlock()
	for inst := range all {
		_ = inst.mod.Close(ctx)
	}
}
