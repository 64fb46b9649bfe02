package plugins

import (
	"context"
	"log/slog"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// instantiateHostModule provides module "wasmilter" in the plugin's runtime.
// The functions are plain Go (GoModuleFunc: no reflection); they find the
// call's instance and Env through the context. A pointer outside guest
// memory panics with errGuestMemory, which wazero turns into a trap of the
// guest's call.
func (p *Plugin) instantiateHostModule(ctx context.Context) error {
	b := p.runtime.NewHostModuleBuilder(abi.HostModule)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export(abi.HostLog)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostNow), nil, []api.ValueType{i64}).
		Export(abi.HostNow)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostMacro), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("name_ptr", "name_len", "out_ptr", "out_cap").
		Export(abi.HostMacro)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostStamp), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		Export(abi.HostStamp)
	_, err := b.Instantiate(ctx)
	return err
}

// hostLog: log(level, ptr, len).
func (p *Plugin) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	text := guestBytes(mod, uint32(stack[1]), uint32(stack[2]))
	level := slogLevel(abi.LogLevel(int32(stack[0])))
	if cc := callFrom(ctx); cc != nil {
		cc.inst.log.line(level, "log", text)
		return
	}
	p.logger.Log(ctx, level, sanitizeLine(text), "plugin", p.spec.Name, "source", "log")
}

func slogLevel(l abi.LogLevel) slog.Level {
	switch l {
	case abi.LogDebug:
		return slog.LevelDebug
	case abi.LogWarn:
		return slog.LevelWarn
	case abi.LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// hostNow: now() -> i64 Unix nanoseconds from the host's clock.
func (p *Plugin) hostNow(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(p.host.clock().UnixNano())
}

// hostMacro: macro(name_ptr, name_len, out_ptr, out_cap) -> i32.
func (p *Plugin) hostMacro(ctx context.Context, mod api.Module, stack []uint64) {
	name := guestBytes(mod, uint32(stack[0]), uint32(stack[1]))
	out := guestBytes(mod, uint32(stack[2]), uint32(stack[3]))
	cc := callFrom(ctx)
	if cc == nil || cc.env == nil {
		stack[0] = absent()
		return
	}
	value, ok := cc.env.Macro(string(name))
	if !ok {
		stack[0] = absent()
		return
	}
	stack[0] = copyOut(out, value)
}

// hostStamp: stamp(out_ptr, out_cap) -> i32, an encoded abi.Stamp.
func (p *Plugin) hostStamp(ctx context.Context, mod api.Module, stack []uint64) {
	out := guestBytes(mod, uint32(stack[0]), uint32(stack[1]))
	cc := callFrom(ctx)
	if cc == nil || cc.env == nil {
		stack[0] = absent()
		return
	}
	stamp, ok := cc.env.Stamp()
	if !ok {
		stack[0] = absent()
		return
	}
	cc.inst.scratch = abi.AppendStamp(cc.inst.scratch[:0], &stamp)
	stack[0] = copyOut(out, cc.inst.scratch)
}

// guestBytes returns a view of guest memory, trapping the call when the
// range is outside it.
func guestBytes(mod api.Module, ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(errGuestMemory)
	}
	return b
}

// copyOut writes data into out when it fits and returns its length either
// way: a length larger than the buffer tells the guest to call again with a
// buffer that big.
func copyOut[T string | []byte](out []byte, data T) uint64 {
	if len(data) > 1<<31-1 {
		return absent()
	}
	if len(data) <= len(out) {
		copy(out, data)
	}
	return api.EncodeI32(int32(len(data)))
}

func absent() uint64 { return api.EncodeI32(abi.ResultAbsent) }
