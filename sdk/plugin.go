package sdk

import (
	"errors"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Handler decides about the message at one hook. It may queue actions on m;
// they go out together with the returned verdict.
type Handler func(m *Message) Verdict

// Plugin is what a plugin registers: an optional Init and one handler per
// hook it cares about. Hooks without a handler are not asked for: the host
// tells the MTA to skip stages that no plugin handles.
type Plugin struct {
	// Init runs once per instance, before any hook, with the plugin's
	// [plugins.config] table. Returning an error refuses to start.
	Init func(cfg Config) error

	Connect Handler // client connected
	Helo    Handler // HELO/EHLO
	Mail    Handler // MAIL FROM
	Rcpt    Handler // each RCPT TO; Message.Rcpt is the current recipient
	Headers Handler // end of headers
	Message Handler // end of message: the last chance to change it
	// Delay is asked by the retry sweeper about a held message. It answers
	// with Message.Notify or Message.Expire, never with a verdict other than
	// Continue.
	Delay Handler

	// NeedsBody asks the host for the message body (abi.FeatureBody). Without
	// a plugin asking, the MTA does not send the body at all.
	NeedsBody bool
}

// handler returns the handler registered for hook h, or nil.
func (p *Plugin) handler(h abi.Hook) Handler {
	switch h {
	case abi.HookConnect:
		return p.Connect
	case abi.HookHelo:
		return p.Helo
	case abi.HookMail:
		return p.Mail
	case abi.HookRcpt:
		return p.Rcpt
	case abi.HookHeaders:
		return p.Headers
	case abi.HookMessage:
		return p.Message
	case abi.HookDelay:
		return p.Delay
	}
	return nil
}

// hooks returns the set of hooks that have a handler.
func (p *Plugin) hooks() abi.HookSet {
	var s abi.HookSet
	for _, h := range abi.Hooks() {
		if p.handler(h) != nil {
			s = s.With(h)
		}
	}
	return s
}

// features returns what the plugin needs from the host.
func (p *Plugin) features() abi.Feature {
	var f abi.Feature
	if p.NeedsBody {
		f |= abi.FeatureBody
	}
	return f
}

// registry holds the one registered plugin. Register runs from a package
// init function, where returning an error is not possible, so a misuse is
// remembered and reported by wasmilter_init as the reason the plugin refuses
// to start.
type registry struct {
	plugin *Plugin
	err    error
}

var registered registry

// Register registers the plugin. Call it exactly once, from an init function
// of package main. A second call, or a plugin without any hook handler, makes
// the plugin refuse to start with a message saying so.
func Register(p Plugin) {
	registered.register(p)
}

func (r *registry) register(p Plugin) {
	switch {
	case r.plugin != nil:
		r.err = errors.New("sdk.Register called more than once; register one sdk.Plugin with all its handlers")
	case p.hooks() == 0:
		// An empty hook set would read as "every exported hook" on the host
		// side (abi.InitAnswer.Hooks), and a plugin with no handler has
		// nothing to do anyway.
		r.err = errors.New("sdk.Register: the plugin has no hook handler (set Connect, Helo, Mail, Rcpt, Headers, Message or Delay)")
	default:
		r.plugin = &p
	}
}
