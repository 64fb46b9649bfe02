package plugins

import (
	"log/slog"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Observer is told how long hook calls take; package metrics implements
// it, and this package stays ignorant of how the numbers are exposed.
// Failures and instance replacements need no observer: they are counted
// already (Plugin.Stats) and read when metrics are scraped.
type Observer interface {
	// HookTimer returns what records the durations of one plugin's calls
	// of one hook. It is asked once per plugin and hook at Load, so a call
	// does no lookup, only Observe.
	HookTimer(plugin, hook string) Timer
}

// Timer records durations; a Prometheus histogram is one.
type Timer interface {
	Observe(seconds float64)
}

// nopObserver is the default: nothing is recorded.
type nopObserver struct{}

func (nopObserver) HookTimer(string, string) Timer { return nopTimer{} }

type nopTimer struct{}

func (nopTimer) Observe(float64) {}

// resolveTimers asks the observer for a timer per hook the plugin has.
func (p *Plugin) resolveTimers(o Observer) {
	for _, h := range abi.Hooks() {
		if p.hooks.Has(h) {
			p.timers[h] = o.HookTimer(p.spec.Name, h.String())
		} else {
			p.timers[h] = nopTimer{}
		}
	}
}

// observe records the duration of a call that began at start.
func (p *Plugin) observe(hook abi.Hook, start time.Time) {
	if hook < abi.NumHooks {
		p.timers[hook].Observe(time.Since(start).Seconds())
	}
}

// LogContext is optionally implemented by an Env: the attributes that name
// the message in progress (its MTA queue ID, identity and stamp), added to
// every log line about its calls — failures and what the guest logs — so an
// admin can follow one message through the MTA's log and wasmilter's.
type LogContext interface {
	LogAttrs() []slog.Attr
}

// envAttrs returns env's log attributes, if it has any.
func envAttrs(env Env) []slog.Attr {
	if lc, ok := env.(LogContext); ok {
		return lc.LogAttrs()
	}
	return nil
}
