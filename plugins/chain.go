package plugins

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Chain runs a list of plugins in config order (see the package doc for how
// their answers combine). It is safe for concurrent use.
type Chain struct {
	plugins  []*Plugin
	hooks    abi.HookSet
	features abi.Feature
	clock    func() time.Time
}

// NewChain makes a chain of plugins in the given order. Nil plugins are left
// out.
func NewChain(plugins ...*Plugin) *Chain {
	c := &Chain{clock: time.Now}
	for _, p := range plugins {
		if p == nil {
			continue
		}
		c.plugins = append(c.plugins, p)
		c.hooks |= p.Hooks()
		c.features |= p.Features()
	}
	if len(c.plugins) > 0 {
		c.clock = c.plugins[0].host.clock
	}
	return c
}

// Plugins returns the chain's plugins in order.
func (c *Chain) Plugins() []*Plugin { return append([]*Plugin(nil), c.plugins...) }

// Hooks returns the union of the plugins' hooks: the stages to ask the MTA for.
func (c *Chain) Hooks() abi.HookSet { return c.hooks }

// Features returns the union of the plugins' features.
func (c *Chain) Features() abi.Feature { return c.features }

// Close closes every plugin of the chain.
func (c *Chain) Close(ctx context.Context) error {
	var errs []error
	for _, p := range c.plugins {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// Result is what a chain decided for one hook.
type Result struct {
	Verdict   abi.Verdict
	Reply     abi.Reply
	Actions   []abi.Action // from every plugin that ran and answered validly, in order
	DecidedBy string       // the plugin whose verdict or failure policy ended the chain
	Failures  []Failure
}

// The replies a failure policy answers with.
var (
	failureTempFailReply = abi.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure in mail policy, try again later"}
	failureRejectReply   = abi.Reply{Code: 550, Enhanced: "5.7.0", Text: "Message refused by mail policy"}
)

// eventBuffers recycles event encodings: Run encodes once per call and every
// plugin of the chain copies from the same bytes.
var eventBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledEvent keeps one huge event from pinning its buffer forever.
const maxPooledEvent = 256 << 10

// Run calls hook on every plugin of the chain that implements it, in order,
// until one answers a terminal verdict or fails with a terminal policy. It
// sets ev.Hook to hook and, when ev.Now is zero, ev.Now to the host's clock.
// Run never fails: failures are in Result.Failures and their policies are
// applied.
func (c *Chain) Run(ctx context.Context, hook abi.Hook, ev *abi.Event, env Env) Result {
	var res Result
	if hook >= abi.NumHooks || !c.hooks.Has(hook) {
		return res
	}
	if ev == nil {
		ev = &abi.Event{}
	}
	ev.Hook = hook
	if ev.Now == 0 {
		ev.Now = c.clock().UnixNano()
	}
	buf := eventBuffers.Get().(*[]byte)
	*buf = abi.AppendEvent((*buf)[:0], ev)
	defer releaseEvent(buf)

	for _, p := range c.plugins {
		if !p.Hooks().Has(hook) {
			continue
		}
		if c.runOne(ctx, p, hook, *buf, env, &res) {
			res.DecidedBy = p.Name()
			return res
		}
	}
	return res
}

func releaseEvent(buf *[]byte) {
	if cap(*buf) <= maxPooledEvent {
		eventBuffers.Put(buf)
	}
}

// runOne calls one plugin and folds its answer (or its failure policy) into
// res. It reports whether the chain ends here.
func (c *Chain) runOne(ctx context.Context, p *Plugin, hook abi.Hook, event []byte, env Env, res *Result) bool {
	answer, failure := p.call(ctx, hook, event, env)
	if failure != nil {
		res.Failures = append(res.Failures, *failure)
		return applyOnError(p.spec.OnError, res)
	}
	res.Actions = append(res.Actions, answer.Actions...)
	if !answer.Verdict.Terminal() {
		return false
	}
	res.Verdict, res.Reply = answer.Verdict, answer.Reply
	return true
}

// applyOnError sets the verdict a failure policy stands for and reports
// whether it ends the chain.
func applyOnError(o OnError, res *Result) bool {
	switch o {
	case OnErrorContinue:
		return false
	case OnErrorAccept:
		res.Verdict, res.Reply = abi.Accept, abi.Reply{}
	case OnErrorReject:
		res.Verdict, res.Reply = abi.Reject, failureRejectReply
	default:
		res.Verdict, res.Reply = abi.TempFail, failureTempFailReply
	}
	return true
}
