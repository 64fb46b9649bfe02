package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// instance is one instantiated guest with its exports looked up once
// (a lookup per call costs ~4 µs and 12 KB). It serves one call at a time.
type instance struct {
	plugin *Plugin
	mod    api.Module
	mem    api.Memory
	log    *guestLog
	stdout *streamWriter
	stderr *streamWriter

	abiVersionFn api.Function
	bufferFn     api.Function
	initializeFn api.Function // nil when the guest has no _initialize
	initFn       api.Function
	hooks        [abi.NumHooks]api.Function

	// The guest's exchange buffer as last returned by wasmilter_buffer.
	bufPtr, bufCap uint32
	// stack is reused by every CallWithStack: all exports take at most one
	// parameter and return at most one result.
	stack [1]uint64
	// scratch is reused to encode host function answers (the stamp).
	scratch []byte
}

// callContext is the context of one guest call: host functions find the
// instance and the message's Env through it. It is allocated per call
// because wazero's deadline watcher may still read the context after the
// call returned, so a reused one would race.
type callContext struct {
	context.Context
	inst *instance
	env  Env
}

type callContextKey struct{}

func (c *callContext) Value(key any) any {
	if key == (callContextKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// callFrom returns the call a host function runs in, or nil.
func callFrom(ctx context.Context) *callContext {
	c, _ := ctx.Value(callContextKey{}).(*callContext)
	return c
}

// newInstance instantiates the guest and initializes it: the ABI version
// _initialize, the ABI version check, then wasmilter_init with the encoded config. ctx bounds
// all of it. It returns the guest's init answer.
func (p *Plugin) newInstance(ctx context.Context) (*instance, abi.InitAnswer, error) {
	inst := &instance{plugin: p, log: newGuestLog(p.logger, p.spec.Name)}
	inst.stdout = newStreamWriter(inst.log, slog.LevelInfo, "stdout")
	inst.stderr = newStreamWriter(inst.log, slog.LevelWarn, "stderr")
	mod, err := p.shared.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, p.mem.allocator()), p.shared.compiled,
		sandboxConfig(p.spec.Env).WithStdout(inst.stdout).WithStderr(inst.stderr))
	if err != nil {
		return nil, abi.InitAnswer{}, fmt.Errorf("instantiate: %w", err)
	}
	inst.mod = mod
	if !p.live.add(inst) {
		return nil, abi.InitAnswer{}, errPluginClosed
	}
	inst.lookupExports()
	answer, err := inst.start(ctx)
	if err != nil {
		p.live.remove(inst)
		_ = mod.Close(context.Background())
		return nil, abi.InitAnswer{}, err
	}
	return inst, answer, nil
}

// lookupExports resolves every export once; Load checked they exist.
func (inst *instance) lookupExports() {
	m := inst.mod
	inst.mem = m.ExportedMemory(memoryExport)
	inst.abiVersionFn = m.ExportedFunction(abi.ExportABIVersion)
	inst.bufferFn = m.ExportedFunction(abi.ExportBuffer)
	inst.initFn = m.ExportedFunction(abi.ExportInit)
	inst.initializeFn = m.ExportedFunction(abi.ExportInitialize)
	for _, h := range abi.Hooks() {
		inst.hooks[h] = m.ExportedFunction(h.Export())
	}
}

// start runs the guest's start-up and returns its init answer.
func (inst *instance) start(ctx context.Context) (abi.InitAnswer, error) {
	cc := &callContext{Context: ctx, inst: inst}
	inst.log.beginCall(nil)
	defer inst.endCall()
	// A WASI reactor must run _initialize before any other export is
	// called: a Go guest's runtime traps ("call _initialize first") on an
	// export called earlier, even one as trivial as the ABI version.
	if inst.initializeFn != nil {
		if err := inst.callNoArg(cc, inst.initializeFn); err != nil {
			return abi.InitAnswer{}, initFailure(abi.ExportInitialize, err)
		}
	}
	if err := inst.callNoArg(cc, inst.abiVersionFn); err != nil {
		return abi.InitAnswer{}, initFailure(abi.ExportABIVersion, err)
	}
	if v := int32(inst.stack[0]); v != abi.Version {
		return abi.InitAnswer{}, fmt.Errorf("ABI version %d, this wasmilter speaks %d", v, abi.Version)
	}
	return inst.runInit(cc)
}

func (inst *instance) runInit(cc *callContext) (abi.InitAnswer, error) {
	config := inst.plugin.config
	if err := inst.writeExchange(cc, config); err != nil {
		return abi.InitAnswer{}, initFailure(abi.ExportInit, err)
	}
	inst.stack[0] = uint64(len(config))
	if err := inst.initFn.CallWithStack(cc, inst.stack[:]); err != nil {
		return abi.InitAnswer{}, initFailure(abi.ExportInit, err)
	}
	raw, err := inst.readResult(inst.stack[0])
	if err != nil {
		return abi.InitAnswer{}, fmt.Errorf("%s: %w", abi.ExportInit, err)
	}
	answer, err := abi.DecodeInitAnswer(raw)
	if err != nil {
		return abi.InitAnswer{}, fmt.Errorf("%s: init answer: %w", abi.ExportInit, err)
	}
	if answer.Error != "" {
		return answer, fmt.Errorf("%s: %s", abi.ExportInit, sanitizeLine([]byte(answer.Error)))
	}
	return answer, nil
}

// initFailure words a guest failure during start-up.
func initFailure(export string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: initialization timed out: %w", export, err)
	}
	return fmt.Errorf("trapped during initialization (%s): %w", export, err)
}

func (inst *instance) callNoArg(ctx context.Context, fn api.Function) error {
	return fn.CallWithStack(ctx, inst.stack[:])
}

// endCall flushes partial output lines and reports suppressed ones.
func (inst *instance) endCall() {
	inst.stdout.flush()
	inst.stderr.flush()
	inst.log.endCall()
}

// callHook writes the event into the exchange buffer, calls the hook and
// returns its decoded, validated answer.
func (inst *instance) callHook(cc *callContext, hook abi.Hook, event []byte) (abi.Answer, error) {
	inst.log.beginCall(cc.env)
	defer inst.endCall()
	if err := inst.writeExchange(cc, event); err != nil {
		return abi.Answer{}, err
	}
	inst.stack[0] = uint64(len(event))
	if err := inst.hooks[hook].CallWithStack(cc, inst.stack[:]); err != nil {
		return abi.Answer{}, err
	}
	raw, err := inst.readResult(inst.stack[0])
	if err != nil {
		return abi.Answer{}, err
	}
	limits := inst.plugin.host.limits
	answer, err := abi.DecodeAnswer(raw, limits)
	if err != nil {
		return abi.Answer{}, fmt.Errorf("%w: %w", errInvalidAnswer, err)
	}
	if err := abi.Validate(&answer, hook, limits); err != nil {
		return abi.Answer{}, fmt.Errorf("%w: %w", errInvalidAnswer, err)
	}
	return answer, nil
}

// writeExchange copies data into the guest's exchange buffer, asking the
// guest for a bigger one first when it does not fit. The size asked for is
// rounded up so that slowly growing events do not ask every time.
func (inst *instance) writeExchange(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if uint64(len(data)) > uint64(inst.bufCap) {
		if err := inst.growExchange(ctx, exchangeSize(len(data))); err != nil {
			return err
		}
	}
	if !inst.mem.Write(inst.bufPtr, data) {
		return fmt.Errorf("%w: exchange buffer %d+%d is outside guest memory", errInvalidAnswer, inst.bufPtr, len(data))
	}
	return nil
}

func (inst *instance) growExchange(ctx context.Context, size uint32) error {
	inst.stack[0] = uint64(size)
	if err := inst.bufferFn.CallWithStack(ctx, inst.stack[:]); err != nil {
		return err
	}
	ptr := uint32(inst.stack[0])
	if ptr == 0 {
		return fmt.Errorf("%w (%d bytes)", errNoBuffer, size)
	}
	if _, ok := inst.mem.Read(ptr, size); !ok {
		return fmt.Errorf("%w: %s(%d) returned %d, outside guest memory", errInvalidAnswer, abi.ExportBuffer, size, ptr)
	}
	inst.bufPtr, inst.bufCap = ptr, size
	return nil
}

// exchangeSize rounds a needed size up to a power of two, at least 4 KiB.
func exchangeSize(n int) uint32 {
	size := uint32(4096)
	for size < uint32(n) && size < 1<<31 {
		size <<= 1
	}
	return size
}

// readResult returns a view (not a copy) of the guest memory named by a
// ptr<<32|len result; nil for 0. The view is valid until the next call into
// the instance.
func (inst *instance) readResult(r uint64) ([]byte, error) {
	if r == 0 {
		return nil, nil
	}
	ptr, n := uint32(r>>32), uint32(r)
	if n == 0 {
		return nil, nil
	}
	if int64(n) > int64(inst.plugin.host.limits.MaxAnswerBytes) {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", errInvalidAnswer, n, inst.plugin.host.limits.MaxAnswerBytes)
	}
	view, ok := inst.mem.Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%w: %d+%d is outside guest memory (%d bytes)", errInvalidAnswer, ptr, n, inst.mem.Size())
	}
	return view, nil
}

// memoryFull reports whether the instance's memory is within a growth step
// of its cap (see classify). The step is what a Go guest grows by at most
// (its heap arenas are 4 MiB on wasm), or an eighth of a smaller cap.
func (inst *instance) memoryFull() bool {
	if inst.mem == nil {
		return false
	}
	limit := inst.plugin.spec.MemoryLimit
	margin := min(limit/8, 4<<20)
	return uint64(inst.mem.Size())+margin >= limit
}
