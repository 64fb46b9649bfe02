package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Env is what host functions read during a call; the pipeline implements it
// per message. It is used from the calling goroutine only.
type Env interface {
	// Macro returns an MTA macro ("i", "{auth_authen}", ...).
	Macro(name string) (string, bool)
	// Stamp returns the message's stamp; false outside a message or before
	// the stamp is known.
	Stamp() (abi.Stamp, bool)
	// Record returns the message's retry-ledger record; false when the
	// message was never deferred (or outside a message).
	Record() (abi.Record, bool)
	// Properties returns the header properties parsed for the message;
	// false before end of header.
	Properties() (abi.Properties, bool)
}

// KVStore is the plugins' key/value store; the host namespaces every key by
// plugin name. The property cache (package cache) implements it.
type KVStore interface {
	KVGet(ns, key string) ([]byte, bool)
	KVSet(ns, key string, value []byte, ttl time.Duration) error
	KVIncr(ns, key string, delta int64, ttl time.Duration) (int64, error)
}

// call runs one hook of the plugin on an encoded event under the plugin's
// deadline. A failure (nil on success) names the plugin and the hook; the
// failed instance has been discarded.
//
// Its duration is observed from the start, waiting for an instance
// included: that is the latency the message sees.
func (p *Plugin) call(ctx context.Context, hook abi.Hook, event []byte, env Env) (abi.Answer, *Failure) {
	p.stats.calls.Add(1)
	if !p.enter() {
		return abi.Answer{}, p.failure(hook, FailureUnavailable, fmt.Errorf("plugin is closed"), env)
	}
	defer p.inflight.Done()
	defer p.observe(hook, time.Now())

	if err := ctx.Err(); err != nil { // the message is already given up on
		return abi.Answer{}, p.failure(hook, classify(err, false), err, env)
	}
	inst, err := p.get(ctx)
	if err != nil {
		return abi.Answer{}, p.failure(hook, FailureUnavailable, err, env)
	}
	// The deadline bounds the guest's own code only, and so starts once an
	// instance is in hand: starting a fresh Go instance (after a failure
	// discarded the last one) can take longer than a hook's whole budget
	// on a loaded machine, and that is not the plugin's fault.
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	p.mem.enterCall()
	answer, err := inst.callHook(&callContext{Context: ctx, inst: inst, env: env}, hook, event)
	p.mem.leaveCall()
	if err != nil {
		kind := classify(err, inst.memoryFull())
		p.discard(inst)
		return abi.Answer{}, p.failure(hook, kind, err, env)
	}
	p.put(inst)
	return answer, nil
}

// failure counts, logs and words a failed call. The log line carries the
// message's queue ID, identity and stamp when env knows them.
func (p *Plugin) failure(hook abi.Hook, kind FailureKind, err error, env Env) *Failure {
	p.stats.failures[kind].Add(1)
	f := &Failure{
		Plugin: p.spec.Name,
		Hook:   hook,
		Kind:   kind,
		Err:    fmt.Errorf("plugin %q: hook %s: %s: %w", p.spec.Name, hook, kind, err),
	}
	level := slog.LevelWarn
	if kind == FailureTrap || kind == FailureOutOfMemory || kind == FailureExit {
		level = slog.LevelError // the plugin is broken, not just slow or busy
	}
	attrs := append([]slog.Attr{slog.String("plugin", p.spec.Name), slog.String("hook", hook.String()),
		slog.String("kind", kind.String()), slog.String("on_error", p.spec.OnError.String()), slog.Any("err", err)},
		envAttrs(env)...)
	p.logger.LogAttrs(context.Background(), level, "plugin failed", attrs...)
	return f
}
