package plugins

import (
	"context"
	"encoding/binary"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// instantiateHostModule provides module "wasmilter" in a runtime. The
// functions are plain Go (GoModuleFunc: no reflection); a runtime may be
// shared by several plugins, so each function serves the plugin whose
// instance is calling, found with the call's instance and Env through the
// context. A pointer outside guest memory panics with errGuestMemory,
// which wazero turns into a trap of the guest's call.
func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(abi.HostModule)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export(abi.HostLog)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostNow), nil, []api.ValueType{i64}).
		Export(abi.HostNow)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostMacro), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("name_ptr", "name_len", "out_ptr", "out_cap").
		Export(abi.HostMacro)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostStamp), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		Export(abi.HostStamp)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostRecord), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		Export(abi.HostRecord)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostProperties), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		Export(abi.HostProperties)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostKVGet), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len", "out_ptr", "out_cap").
		Export(abi.HostKVGet)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostKVSet), []api.ValueType{i32, i32, i32, i32, i64}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len", "val_ptr", "val_len", "ttl_ms").
		Export(abi.HostKVSet)
	b.NewFunctionBuilder().
		WithGoModuleFunction(forCaller((*Plugin).hostKVIncr), []api.ValueType{i32, i32, i64, i64, i32}, []api.ValueType{i32}).
		WithParameterNames("key_ptr", "key_len", "delta", "ttl_ms", "out_ptr").
		Export(abi.HostKVIncr)
	_, err := b.Instantiate(ctx)
	return err
}

// forCaller turns a host function of one plugin into the runtime's: it
// runs for the plugin whose instance is calling.
func forCaller(f func(*Plugin, context.Context, api.Module, []uint64)) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		f(pluginOf(ctx), ctx, mod, stack)
	}
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
	answerFromEnv(ctx, mod, stack, func(env Env, b []byte) ([]byte, bool) {
		st, ok := env.Stamp()
		return abi.AppendStamp(b, &st), ok
	})
}

// hostRecord: record(out_ptr, out_cap) -> i32, an encoded abi.Record.
func (p *Plugin) hostRecord(ctx context.Context, mod api.Module, stack []uint64) {
	answerFromEnv(ctx, mod, stack, func(env Env, b []byte) ([]byte, bool) {
		rec, ok := env.Record()
		return abi.AppendRecord(b, &rec), ok
	})
}

// hostProperties: properties(out_ptr, out_cap) -> i32, encoded abi.Properties.
func (p *Plugin) hostProperties(ctx context.Context, mod api.Module, stack []uint64) {
	answerFromEnv(ctx, mod, stack, func(env Env, b []byte) ([]byte, bool) {
		props, ok := env.Properties()
		return abi.AppendProperties(b, &props), ok
	})
}

// answerFromEnv answers a host function of the form (out_ptr, out_cap) -> i32
// with something encode takes from the call's Env, encoded into the
// instance's scratch buffer; absent when there is no Env or encode says so.
func answerFromEnv(ctx context.Context, mod api.Module, stack []uint64, encode func(env Env, b []byte) ([]byte, bool)) {
	out := guestBytes(mod, uint32(stack[0]), uint32(stack[1]))
	cc := callFrom(ctx)
	if cc == nil || cc.env == nil {
		stack[0] = absent()
		return
	}
	b, ok := encode(cc.env, cc.inst.scratch[:0])
	if !ok {
		stack[0] = absent()
		return
	}
	cc.inst.scratch = b
	stack[0] = copyOut(out, b)
}

// kvKey reads a key/value key from guest memory; "" when it is not a valid
// key (empty or longer than abi.MaxKVKey).
func kvKey(mod api.Module, ptr, n uint32) string {
	if n == 0 || n > abi.MaxKVKey {
		return ""
	}
	return string(guestBytes(mod, ptr, n))
}

// kvTTL turns the guest's milliseconds into a TTL; 0 means the store's default.
func kvTTL(ms uint64) time.Duration {
	if v := int64(ms); v > 0 {
		return time.Duration(v) * time.Millisecond
	}
	return 0
}

// hostKVGet: kv_get(key_ptr, key_len, out_ptr, out_cap) -> i32.
func (p *Plugin) hostKVGet(_ context.Context, mod api.Module, stack []uint64) {
	key := kvKey(mod, uint32(stack[0]), uint32(stack[1]))
	out := guestBytes(mod, uint32(stack[2]), uint32(stack[3]))
	if key == "" || p.host.kv == nil {
		stack[0] = absent()
		return
	}
	value, ok := p.host.kv.KVGet(p.spec.Name, key)
	if !ok {
		stack[0] = absent()
		return
	}
	stack[0] = copyOut(out, value)
}

// hostKVSet: kv_set(key_ptr, key_len, val_ptr, val_len, ttl_ms) -> i32.
func (p *Plugin) hostKVSet(_ context.Context, mod api.Module, stack []uint64) {
	key := kvKey(mod, uint32(stack[0]), uint32(stack[1]))
	value := guestBytes(mod, uint32(stack[2]), uint32(stack[3]))
	if key == "" || p.host.kv == nil {
		stack[0] = refused()
		return
	}
	// The store keeps the value past the call: copy it out of guest memory.
	if err := p.host.kv.KVSet(p.spec.Name, key, append([]byte(nil), value...), kvTTL(stack[4])); err != nil {
		stack[0] = refused()
		return
	}
	stack[0] = 0
}

// hostKVIncr: kv_incr(key_ptr, key_len, delta, ttl_ms, out_ptr) -> i32.
func (p *Plugin) hostKVIncr(_ context.Context, mod api.Module, stack []uint64) {
	key := kvKey(mod, uint32(stack[0]), uint32(stack[1]))
	out := guestBytes(mod, uint32(stack[4]), 8)
	if key == "" || p.host.kv == nil {
		stack[0] = refused()
		return
	}
	n, err := p.host.kv.KVIncr(p.spec.Name, key, int64(stack[2]), kvTTL(stack[3]))
	if err != nil {
		stack[0] = refused()
		return
	}
	binary.LittleEndian.PutUint64(out, uint64(n))
	stack[0] = 0
}

func refused() uint64 { return api.EncodeI32(abi.ResultRefused) }

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
