package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/pipeline"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// generation is what a reload replaces: the plugins, the pipeline that
// runs messages through them, and the delay notices with their policy. The
// listeners, the ledger, the property cache and the Wasm runtime stay.
//
// MTA sessions hold the generation that was current when they began; a
// retired generation is released when its last session ends, so messages
// in flight during a reload finish on the plugins they started with.
type generation struct {
	cfg      *config.Config
	chain    *plugins.Chain
	pipeline *pipeline.Pipeline
	notices  *delayNotices

	mu           sync.Mutex
	open         int  // sessions holding this generation
	retired      bool // no longer current
	releasedOnce sync.Once
}

// shared are the parts a generation is built on and a reload keeps.
type shared struct {
	host   *plugins.Host
	ledger retry.Ledger
	cache  *cache.Cache
	opts   Options
	log    *slog.Logger
}

// buildGeneration loads cfg's plugins and delay policy and makes the
// pipeline over them. On error nothing of it is left open.
func buildGeneration(ctx context.Context, cfg *config.Config, sh shared) (*generation, error) {
	keys, err := cfg.StampKeys()
	if err != nil {
		return nil, cfg.Errorf("stamp.keys", "%v", err)
	}
	codec, err := stamp.NewCodec(cfg.Stamp.Header, keys)
	if err != nil {
		return nil, cfg.Errorf("stamp", "%v", err)
	}
	loaded, policy, err := loadAll(ctx, cfg, sh)
	if err != nil {
		return nil, err
	}
	chain := plugins.NewChain(loaded...)
	notices, err := buildNotices(ctx, cfg, policy, sh.ledger, sh.cache, sh.opts, sh.log)
	if err != nil {
		chain.Close(ctx)
		return nil, err
	}
	pl := pipeline.New(withLimits(pipeline.Options{Chain: chain, Stamps: codec, Ledger: timedLedger(sh), Policy: retryPolicy(cfg),
		AcceptOnStoreError: cfg.Retry.OnStoreError == "accept", Cache: sh.cache, Clock: sh.opts.Clock, Logger: sh.log,
		Observer: pipelineObserver{sh.opts.Metrics}}, cfg))
	return &generation{cfg: cfg, chain: chain, pipeline: pl, notices: notices}, nil
}

// loadAll loads the plugins and, when notices are on, the delay policy,
// the policy alongside the plugins (each is a Wasm module to decode and
// instantiate; together they are most of a start). Every failure of either
// is reported, each at its config key; on error nothing is left open.
func loadAll(ctx context.Context, cfg *config.Config, sh shared) ([]*plugins.Plugin, *plugins.Chain, error) {
	var policy *plugins.Chain
	var policyErr *config.Error
	var wg sync.WaitGroup
	if wantsNotices(cfg, sh.ledger) {
		wg.Go(func() { policy, policyErr = loadPolicy(ctx, sh.host, cfg) })
	}
	loaded, errs := loadPlugins(ctx, sh.host, cfg)
	wg.Wait()
	if errs == nil && policyErr == nil {
		return loaded, policy, nil
	}
	closePlugins(ctx, loaded) // nil when they failed: loadPlugins closed them
	if policyErr != nil {
		errs = append(errs, policyErr)
	} else if policy != nil {
		policy.Close(ctx)
	}
	return nil, nil, errs
}

// enter counts a session in; it reports false for a generation already
// released (the caller then takes the current one again).
func (g *generation) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired && g.open == 0 {
		return false
	}
	g.open++
	return true
}

// leave counts a session out and releases a retired generation whose last
// session this was.
func (g *generation) leave() {
	g.mu.Lock()
	g.open--
	done := g.retired && g.open == 0
	g.mu.Unlock()
	if done {
		go g.release(context.Background())
	}
}

// retire marks g as no longer current and releases it at once if no
// session holds it.
func (g *generation) retire(ctx context.Context) {
	g.mu.Lock()
	g.retired = true
	done := g.open == 0
	g.mu.Unlock()
	// The old sweeper stops now: the new generation's sweeper has taken
	// over, and the outbox's leases keep the two from sending a step twice.
	go g.notices.shutdown(ctx)
	if done {
		g.release(ctx)
	}
}

// released reports whether the generation is retired with no session
// left: it is released, or about to be.
func (g *generation) released() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.retired && g.open == 0
}

// release stops the generation's notices and closes its plugins, once.
func (g *generation) release(ctx context.Context) {
	g.releasedOnce.Do(func() {
		g.notices.shutdown(ctx)
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.chain.Close(closeCtx)
	})
}

// backend is the milter.Backend of a server: each new MTA session runs on
// the generation current when it starts.
type backend struct{ s *Server }

func (b backend) NewSession(c *milter.Conn) milter.Session {
	g := b.s.enterCurrent()
	return &generationSession{Session: g.pipeline.NewSession(c), gen: g}
}

// generationSession is a pipeline session that holds its generation until
// it is closed.
type generationSession struct {
	milter.Session
	gen  *generation
	once sync.Once
}

func (gs *generationSession) Close() {
	gs.Session.Close()
	gs.once.Do(gs.gen.leave)
}
