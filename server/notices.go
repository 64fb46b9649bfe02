package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/metrics"
	"github.com/wasmilter/wasmilter/notify"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// delayNotices is the retry sweeper driving the notifier while the server
// serves. The zero of it, a nil *delayNotices, does nothing: a server
// without a ledger or without a delay policy has no one to tell.
type delayNotices struct {
	notifier *notify.Notifier
	sweeper  *retry.Sweeper
	policy   *plugins.Chain
	interval time.Duration
	log      *slog.Logger
	metrics  *metrics.Metrics // counts the sweeps; nil: not counted

	once      sync.Once // starts the loop, or (at shutdown) marks it never to start
	closeOnce sync.Once // releases the policy
	stop      context.CancelFunc
	abort     context.CancelFunc
	done      chan struct{}
	loop      func()
}

// canceled is a done context: shutdown(canceled) aborts sends in flight.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// wantsNotices reports whether the server sends delay notices: it needs a
// ledger to sweep and a delay policy to ask.
func wantsNotices(cfg *config.Config, ledger retry.Ledger) bool {
	return ledger != nil && cfg.Notify.Policy.Path != ""
}

// buildNotices makes the notifier and its sweeper over the loaded delay
// policy (see loadPolicy), which it owns from then on, closing it on error;
// nil when the policy is nil (see wantsNotices).
func buildNotices(ctx context.Context, cfg *config.Config, policy *plugins.Chain, ledger retry.Ledger,
	kv *cache.Cache, opts Options, log *slog.Logger) (*delayNotices, error) {
	if policy == nil {
		return nil, nil
	}
	nc := &cfg.Notify
	hostname, err := reportingHost(nc.Hostname)
	if err != nil {
		policy.Close(ctx)
		return nil, cfg.Errorf("notify.hostname", "%v", err)
	}
	node := nc.Node
	if node == "" {
		node = hostname
	}
	var sender notify.Sender = &dsn.Submitter{Addr: nc.SMTP, HeloName: hostname, StartTLS: nc.StartTLS, Timeout: nc.Timeout.Duration}
	if opts.NoticeSender != nil {
		sender = opts.NoticeSender
	}
	n, err := notify.New(notify.Options{
		Ledger: ledger, Policy: policy, Node: node, ReportingMTA: hostname, From: nc.From, Sender: sender,
		Retry: retryPolicy(cfg), Lease: nc.Lease.Duration, RetryAfter: nc.RetryAfter.Duration,
		RateLimit: nc.RateLimit, RateWindow: nc.RateWindow.Duration, Counter: kv,
		Disabled: !nc.Enabled, Cleared: nc.Cleared, StampHeader: cfg.Stamp.Header,
		Clock: opts.Clock, Logger: log,
	})
	if err != nil {
		policy.Close(ctx)
		return nil, cfg.Errorf("notify", "%v", err)
	}
	d := &delayNotices{notifier: n, policy: policy, interval: nc.SweepInterval.Duration, log: log, metrics: opts.Metrics,
		sweeper: &retry.Sweeper{Ledger: ledger, Clock: opts.Clock, States: n.SweptStates()},
		done:    make(chan struct{})}
	stopCtx, stop := context.WithCancel(context.Background())
	abortCtx, abort := context.WithCancel(context.Background())
	d.stop, d.abort = stop, abort
	d.loop = func() { d.run(stopCtx, abortCtx) }
	return d, nil
}

// loadPolicy loads [notify.policy] as a chain of one plugin, which must
// implement the delay hook.
func loadPolicy(ctx context.Context, host *plugins.Host, cfg *config.Config) (*plugins.Chain, *config.Error) {
	pc := &cfg.Notify.Policy
	mod, source, err := readModule(cfg, pc.Path)
	if err != nil {
		return nil, cfg.Errorf("notify.policy.path", "%v", err)
	}
	entries, err := config.FlattenPluginConfig(pc.Config)
	if err != nil {
		return nil, cfg.Errorf("notify.policy.config", "%v", err)
	}
	p, err := host.Load(ctx, plugins.Spec{Name: pc.Name, Source: source, Wasm: mod.Wasm, Env: mod.Env, Timeout: pc.Timeout.Duration,
		MemoryLimit: uint64(pc.Memory), OnError: plugins.OnErrorContinue, Config: entries, MaxInstances: pc.MaxInstances})
	if err != nil {
		return nil, cfg.Errorf("notify.policy", "%v", err)
	}
	if !p.Hooks().Has(abi.HookDelay) {
		p.Close(ctx)
		return nil, cfg.Errorf("notify.policy.path", "%s implements no delay hook (it has: %s): it cannot be the delay policy", source, p.Hooks())
	}
	return plugins.NewChain(p), nil
}

// reportingHost is the configured host name, or the system's.
func reportingHost(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "", fmt.Errorf("the system has no host name (%v): set notify.hostname", err)
	}
	return name, nil
}

// start runs the sweep loop in the background, once.
func (d *delayNotices) start() {
	if d == nil {
		return
	}
	d.once.Do(func() { go d.loop() })
}

// run sweeps every interval until stopCtx ends. Visits run on abortCtx, so
// stopping lets a notice in flight finish its SMTP exchange (a notice cut
// off mid-send is sent again later) while no new visit starts.
func (d *delayNotices) run(stopCtx, abortCtx context.Context) {
	defer close(d.done)
	visit := func(_ context.Context, now time.Time, rec retry.Record) error {
		return d.notifier.Visit(abortCtx, now, rec)
	}
	d.log.Info("delay notices: sweeping", "interval", d.interval, "states", d.sweeper.States)
	_ = d.sweeper.Run(stopCtx, d.interval, visit, d.report)
}

// report logs one sweep and counts it.
func (d *delayNotices) report(st retry.SweepStats, err error) {
	took := st.Finished.Sub(st.Started)
	if d.metrics != nil {
		d.metrics.ObserveSweep(took, st.Visited, err)
	}
	if err != nil {
		d.log.Warn("delay notices: sweep", "visited", st.Visited, "failed", st.Failed, "took", took, "err", err)
		return
	}
	d.log.Debug("delay notices: sweep", "visited", st.Visited, "skipped", st.Skipped, "took", took)
}

// shutdown stops the loop: no new visit starts; a visit in flight may
// finish until ctx ends, then its send is cut off. It then releases the
// delay policy. Safe to call more than once.
func (d *delayNotices) shutdown(ctx context.Context) {
	if d == nil {
		return
	}
	d.once.Do(func() { close(d.done) }) // never started: nothing to wait for
	d.stop()
	select {
	case <-d.done:
	case <-ctx.Done():
		d.abort()
		<-d.done
	}
	d.abort()
	d.closeOnce.Do(func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.policy.Close(closeCtx)
	})
}

// Notifier returns the current delay notifier, nil when there is none.
func (s *Server) Notifier() *notify.Notifier {
	if n := s.currentGeneration().notices; n != nil {
		return n.notifier
	}
	return nil
}

// SweepNotices runs one sweep of the delay notices now, in the caller's
// goroutine, on the server's clock: what the background sweeper does every
// sweep_interval while the server serves. replay -at uses it to play the
// sweeper on a simulated clock. Without a ledger or a delay policy it does
// nothing.
func (s *Server) SweepNotices(ctx context.Context) (retry.SweepStats, error) {
	n := s.currentGeneration().notices
	if n == nil {
		return retry.SweepStats{}, nil
	}
	return n.sweeper.Sweep(ctx, n.notifier.Visit)
}
