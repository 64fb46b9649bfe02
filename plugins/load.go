package plugins

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

const (
	defaultTimeout     = 100 * time.Millisecond
	defaultMemoryLimit = 64 << 20
	wasmPageSize       = 64 << 10
	maxWasmPages       = 65536 // 4 GiB, the wasm32 address space

	// initTimeout bounds instantiation, _initialize and wasmilter_init of
	// an instance created outside a call (at Load and as a background
	// replacement). A Go guest needs a few milliseconds; C or .wat guests
	// far less. Instances created inside a call are bounded by its deadline.
	initTimeout = 5 * time.Second

	// memoryExport is the guest memory the host reads and writes.
	memoryExport = "memory"
)

// Spec says how to run one plugin. The config package builds it.
type Spec struct {
	Name        string
	Source      string            // for messages: a file path or "builtin:stamp"
	Wasm        []byte            // the module's bytes
	Timeout     time.Duration     // per hook call; 0 means 100ms
	MemoryLimit uint64            // bytes, rounded up to 64 KiB pages; 0 means 64 MiB
	OnError     OnError           // what a failure means for the message
	Config      []abi.ConfigEntry // handed to wasmilter_init
	// Env is the guest's environment (none by default). The builtins use
	// it to select their policy (builtin.SelectEnv).
	Env          map[string]string
	MaxInstances int // pool bound; 0 means defaultMaxInstances()
}

// withDefaults fills zero fields and checks the rest.
func (s Spec) withDefaults() (Spec, error) {
	if s.Name == "" {
		return s, errors.New("plugin without a name")
	}
	if s.Timeout < 0 || s.MaxInstances < 0 {
		return s, errors.New("negative timeout or max_instances")
	}
	if s.OnError < OnErrorTempFail || s.OnError > OnErrorContinue {
		return s, fmt.Errorf("unknown %s", s.OnError)
	}
	if s.Timeout == 0 {
		s.Timeout = defaultTimeout
	}
	if s.MemoryLimit == 0 {
		s.MemoryLimit = defaultMemoryLimit
	}
	pages := (s.MemoryLimit + wasmPageSize - 1) / wasmPageSize
	if pages > maxWasmPages {
		return s, fmt.Errorf("memory limit %d bytes is more than the 4 GiB a wasm32 module can address", s.MemoryLimit)
	}
	s.MemoryLimit = pages * wasmPageSize
	if s.MaxInstances == 0 {
		s.MaxInstances = defaultMaxInstances()
	}
	return s, nil
}

// defaultMaxInstances bounds a plugin's pool at one instance per CPU, as
// no more calls than that can run at once; at least two, so that one call
// running into its deadline does not hold up every other message. (Twice
// the CPUs bought no throughput on 2 cores, at 8 or 64 connections, and
// cost ~3-4 MiB of guest memory per extra Go instance: docs/BENCHMARKS.md.)
func defaultMaxInstances() int { return max(2, runtime.GOMAXPROCS(0)) }

// Load compiles a plugin, checks its ABI, creates and initializes its first
// instance and returns the plugin ready to run, that instance pooled. Every
// error names the plugin and its source.
func (h *Host) Load(ctx context.Context, spec Spec) (*Plugin, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", spec.Name, spec.Source, err)
	}
	p, err := h.load(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", spec.Name, spec.Source, err)
	}
	return p, nil
}

func (h *Host) load(ctx context.Context, spec Spec) (*Plugin, error) {
	h.loading.RLock()
	defer h.loading.RUnlock()
	if h.isClosed() {
		return nil, errors.New("host is closed")
	}
	if !isWasm(spec.Wasm) {
		return nil, errors.New("not a WebAssembly module")
	}
	sr, err := h.acquireRuntime(ctx, spec)
	if err != nil {
		return nil, err
	}
	p, err := h.newPlugin(ctx, spec, sr)
	if err != nil {
		return nil, err
	}
	if err := h.register(p); err != nil {
		_ = p.closeInstancesAndRuntime(context.WithoutCancel(ctx))
		p.mem.release()
		return nil, err
	}
	return p, nil
}

// isWasm checks the binary magic and version, so that a text file or a
// .wat given by mistake gets a plain answer instead of a decoder error.
func isWasm(b []byte) bool {
	return len(b) >= 8 && bytes.Equal(b[:8], []byte("\x00asm\x01\x00\x00\x00"))
}

// newPlugin creates the plugin's first instance in sr, which it owns from
// then on: on error, its use of sr is released.
func (h *Host) newPlugin(ctx context.Context, spec Spec, sr *sharedRuntime) (_ *Plugin, err error) {
	spec.Wasm = nil // compiled: the plugin must not keep the module's bytes (3 MB for a Go guest) alive
	p := newPlugin(h, spec, sr)
	defer func() {
		if err != nil { // the instances first: closing them frees their memories into p.mem
			_ = p.closeInstancesAndRuntime(context.WithoutCancel(ctx))
			p.mem.release()
		}
	}()
	initCtx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	inst, answer, err := p.newInstance(initCtx)
	if err != nil {
		return nil, err
	}
	p.hooks = sr.exported
	if answer.Hooks != 0 {
		p.hooks &= answer.Hooks
	}
	p.features = answer.Features
	p.resolveTimers(h.obs)
	p.adopt(inst)
	return p, nil
}

// signature is a function type written the way error messages show it.
type signature struct {
	params, results []api.ValueType
}

func (s signature) String() string {
	return "(" + valueTypes(s.params) + ")->" + valueTypes(s.results)
}

func valueTypes(ts []api.ValueType) string {
	out := ""
	for i, t := range ts {
		if i > 0 {
			out += ","
		}
		out += api.ValueTypeName(t)
	}
	return out
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64

	sigABIVersion = signature{nil, []api.ValueType{i32}}
	sigBuffer     = signature{[]api.ValueType{i32}, []api.ValueType{i32}}
	sigInit       = signature{[]api.ValueType{i32}, []api.ValueType{i64}}
	sigInitialize = signature{nil, nil}
	sigHook       = signature{[]api.ValueType{i32}, []api.ValueType{i64}}
)

// checkExports checks the module's exports against the ABI before anything
// runs, and returns the hooks it exports.
func checkExports(m wazero.CompiledModule) (abi.HookSet, error) {
	funcs := m.ExportedFunctions()
	required := []struct {
		name string
		sig  signature
	}{
		{abi.ExportABIVersion, sigABIVersion},
		{abi.ExportBuffer, sigBuffer},
		{abi.ExportInit, sigInit},
	}
	for _, r := range required {
		def, ok := funcs[r.name]
		if !ok {
			return 0, fmt.Errorf("missing export %s", r.name)
		}
		if err := checkSignature(r.name, def, r.sig); err != nil {
			return 0, err
		}
	}
	if def, ok := funcs[abi.ExportInitialize]; ok {
		if err := checkSignature(abi.ExportInitialize, def, sigInitialize); err != nil {
			return 0, err
		}
	}
	if _, ok := m.ExportedMemories()[memoryExport]; !ok {
		return 0, fmt.Errorf("missing export %s (the guest's linear memory)", memoryExport)
	}
	var hooks abi.HookSet
	for _, hook := range abi.Hooks() {
		def, ok := funcs[hook.Export()]
		if !ok {
			continue
		}
		if err := checkSignature(hook.Export(), def, sigHook); err != nil {
			return 0, err
		}
		hooks = hooks.With(hook)
	}
	return hooks, nil
}

func checkSignature(name string, def api.FunctionDefinition, want signature) error {
	got := signature{def.ParamTypes(), def.ResultTypes()}
	if !sameTypes(got.params, want.params) || !sameTypes(got.results, want.results) {
		return fmt.Errorf("export %s has signature %s, want %s", name, got, want)
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	return bytes.Equal(a, b)
}

// sandboxConfig is the module configuration of every guest instance: no
// filesystem or arguments, only the Spec's environment; crypto/rand and
// real clocks. Start functions are left to the host, which runs
// _initialize under a deadline.
func sandboxConfig(env map[string]string) wazero.ModuleConfig {
	c := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module in one runtime
		WithStartFunctions().
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	for k, v := range env {
		c = c.WithEnv(k, v)
	}
	return c
}
