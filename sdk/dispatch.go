package sdk

import (
	"fmt"
	"runtime/debug"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// exchange is the buffer the host writes events and the config into
// (wasmilter_buffer). It is a package-level slice so it stays reachable, and
// Go's garbage collector does not move heap objects, so the address the
// host was given stays valid until the buffer has to grow.
var exchange = make([]byte, 4096)

// answerBuf holds the last encoded answer until the host has read it; it is
// reused by every call.
var answerBuf []byte

// exchangeBuffer returns a buffer of at least size bytes for the host to
// write into, reusing the current one when it is large enough.
func exchangeBuffer(size int32) []byte {
	if size < 1 {
		size = 1 // the glue needs an element to take the address of
	}
	if int(size) > cap(exchange) {
		exchange = make([]byte, size)
	}
	return exchange[:cap(exchange)]
}

// input returns the n bytes the host wrote into the exchange buffer.
func input(n int32) ([]byte, error) {
	if n < 0 || int(n) > cap(exchange) {
		return nil, fmt.Errorf("the host passed length %d, but the exchange buffer holds %d bytes", n, cap(exchange))
	}
	return exchange[:n], nil
}

// runInit serves wasmilter_init: it decodes the config, runs the plugin's
// Init and returns the encoded abi.InitAnswer.
func runInit(n int32) []byte {
	defer trapOnPanic("init")
	ans := initAnswer(n)
	answerBuf = abi.AppendInitAnswer(answerBuf[:0], &ans)
	return answerBuf
}

func initAnswer(n int32) abi.InitAnswer {
	if registered.err != nil {
		return abi.InitAnswer{Error: registered.err.Error()}
	}
	p := registered.plugin
	if p == nil {
		return abi.InitAnswer{Error: "no plugin registered: call sdk.Register from an init function of package main"}
	}
	if err := initPlugin(p, n); err != nil {
		return abi.InitAnswer{Error: err.Error()}
	}
	return abi.InitAnswer{Features: p.features(), Hooks: p.hooks()}
}

// initPlugin decodes the config and runs Init. Keys Init never read are
// logged, not refused: a typo should be visible, but an old key left in a
// config file must not stop the server.
func initPlugin(p *Plugin, n int32) error {
	in, err := input(n)
	if err != nil {
		return err
	}
	entries, err := abi.DecodeConfig(in)
	if err != nil {
		return fmt.Errorf("decoding the plugin config: %w", err)
	}
	if p.Init == nil {
		if len(entries) > 0 {
			Logf(LogWarn, "plugin has no Init; its %d config keys are ignored", len(entries))
		}
		return nil
	}
	cfg := newConfig(entries)
	if err := p.Init(cfg); err != nil {
		return err
	}
	if err := cfg.Err(); err != nil {
		return err
	}
	if unread := cfg.Unread(); len(unread) > 0 {
		Logf(LogWarn, "config keys not used by the plugin (typo?): %v", unread)
	}
	return nil
}

// runHook serves a hook export: it decodes the event, runs the handler and
// returns the encoded abi.Answer, or nil for "continue, no actions".
func runHook(h abi.Hook, n int32) []byte {
	defer trapOnPanic(h.String())
	handler := registeredHandler(h)
	if handler == nil {
		return nil // the host asked anyway: no objection
	}
	in, err := input(n)
	if err != nil {
		panic(err)
	}
	defer func() { currentCall++ }() // retire this call's Headers views
	m, err := reuseMessage(in)
	if err != nil {
		panic(fmt.Errorf("decoding the %s event: %w", h, err))
	}
	m.ev.Hook = h // the export called is what decides, whatever the event says
	ans := m.answer(handler(m))
	if ans.Verdict == abi.Continue && ans.Reply.IsZero() && len(ans.Actions) == 0 {
		return nil
	}
	answerBuf = abi.AppendAnswer(answerBuf[:0], &ans)
	return answerBuf
}

func registeredHandler(h abi.Hook) Handler {
	if registered.plugin == nil {
		return nil
	}
	return registered.plugin.handler(h)
}

// trapOnPanic is deferred by every export. It logs a panic through the host
// first, so the reason reaches the server log as one error line attributed
// to the plugin (the Go runtime's own report goes to stderr, which the host
// cuts into bounded lines), and panics again so the call traps and the host
// applies the plugin's failure policy (see the package documentation).
func trapOnPanic(where string) {
	r := recover()
	if r == nil {
		return
	}
	host.log(LogError, fmt.Sprintf("plugin panicked in %s: %v\n%s", where, r, debug.Stack()))
	panic(fmt.Sprintf("wasmilter plugin: panic in %s: %v", where, r))
}
