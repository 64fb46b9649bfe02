package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmilter/wasmilter/admin"
	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/metrics"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/notify"
	"github.com/wasmilter/wasmilter/pipeline"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/retry"
)

// Options are what Build takes besides the Config.
type Options struct {
	Logger   *slog.Logger                 // nil: slog.Default()
	Clock    func() time.Time             // nil: time.Now (replay passes a simulated clock)
	Listener func() (net.Listener, error) // nil: listen on cfg.Milter.Listen
	// Ledger replaces the one [retry] store names (replay uses a
	// temporary one); the server does not close a ledger it was given.
	Ledger retry.Ledger
	// NoticeSender replaces the SMTP submission of delay notices to
	// [notify] smtp (replay records the notices instead of sending them).
	NoticeSender notify.Sender
	// LoadConfig reads the configuration again for a reload (SIGHUP, the
	// admin API's POST /v1/reload); nil: the server cannot reload.
	LoadConfig func() (*config.Config, error)
	// Metrics receives the server's metrics; nil: the server makes its
	// own (served on the admin API's /metrics).
	Metrics *metrics.Metrics
}

// Server is a built wasmilter, ready to serve.
type Server struct {
	cfg         *config.Config
	log         *slog.Logger
	cache       *cache.Cache
	ledger      retry.Ledger
	ownsLedger  bool
	host        *plugins.Host
	shared      shared
	milter      *milter.Server
	admin       *http.Server // nil when [admin] listen is ""
	listen      func() (net.Listener, error)
	clock       func() time.Time
	janitorOnce sync.Once // starts the janitor, or (in release) marks it never to start
	janitorCtx  context.Context
	stopJanitor context.CancelFunc
	janitorDone chan struct{}
	listening   atomic.Bool // the milter listener is open (readiness)

	genMu       sync.Mutex
	current     *generation   // what new MTA sessions run on; replaced by Reload
	generations []*generation // every generation not known to be released, current included
	retired     retiredCounts // the counters of generations dropped from generations
	serving     bool          // Serve was called: a new generation's sweeper starts at once
	reloadMu    sync.Mutex    // one reload at a time
}

// Build constructs every part from cfg and checks it. On error nothing is
// left running.
func Build(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	props, err := cache.New(cache.Config{MaxEntries: cfg.Cache.MaxEntries, MaxBytes: int64(cfg.Cache.MaxBytes),
		TTL: cfg.Cache.TTL.Duration, KVShare: cfg.Cache.KVShare, Clock: opts.Clock})
	if err != nil {
		return nil, cfg.Errorf("cache", "%v", err)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(buildInfo())
	}
	ledger, owns, err := openLedger(ctx, cfg, opts, log)
	if err != nil {
		return nil, err
	}
	host, err := newHost(ctx, cfg, log, opts, props)
	if err != nil {
		closeIf(owns, ledger)
		return nil, err
	}
	sh := shared{host: host, ledger: ledger, cache: props, opts: opts, log: log}
	gen, err := buildGeneration(ctx, cfg, sh)
	if err != nil {
		host.Close(ctx)
		closeIf(owns, ledger)
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, cache: props, ledger: ledger, ownsLedger: owns, host: host, shared: sh,
		listen: opts.Listener, current: gen, generations: []*generation{gen}}
	s.milter = &milter.Server{Backend: backend{s}, ReadTimeout: cfg.Milter.ReadTimeout.Duration,
		WriteTimeout: cfg.Milter.WriteTimeout.Duration, MaxPacket: int(cfg.Milter.MaxPacket), Logger: log}
	if cfg.Admin.Listen != "" {
		ao := admin.Options{Ledger: ledger, Cache: adminCache{props},
			Token: cfg.Admin.Token, Clock: opts.Clock, Logger: log, Ready: s.Ready, Metrics: opts.Metrics.Handler(),
			Pprof: cfg.Admin.Pprof}
		if opts.LoadConfig != nil {
			ao.Reload = s.ReloadConfig
		}
		handler := admin.NewHandler(ao)
		s.admin = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	}
	if s.listen == nil {
		s.listen = s.listenConfigured
	}
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = time.Now
	}
	s.janitorCtx, s.stopJanitor = context.WithCancel(context.Background())
	s.janitorDone = make(chan struct{})
	s.watchMetrics(opts.Metrics)
	return s, nil
}

// openLedger opens the ledger [retry] store names, unless one was given.
// It reports whether the server owns (and must close) it.
func openLedger(ctx context.Context, cfg *config.Config, opts Options, log *slog.Logger) (retry.Ledger, bool, error) {
	if opts.Ledger != nil {
		return opts.Ledger, false, nil
	}
	if cfg.Retry.RedisStore() {
		r, err := retry.OpenRedis(ctx, cfg.Retry.Store, retry.RedisOptions{Prefix: cfg.Retry.RedisPrefix,
			Clock: opts.Clock, Logger: log})
		if err != nil {
			return nil, false, cfg.Errorf("retry.store", "%v", err)
		}
		return r, true, nil
	}
	path, ok := strings.CutPrefix(cfg.Retry.Store, config.RetryStoreBolt)
	if !ok {
		return nil, false, nil // "": no ledger
	}
	b, err := retry.OpenBolt(cfg.Resolve(path), retry.BoltOptions{Clock: opts.Clock})
	if err != nil {
		return nil, false, cfg.Errorf("retry.store", "%v", err)
	}
	return b, true, nil
}

func retryPolicy(cfg *config.Config) retry.Policy {
	return retry.Policy{MaxAge: cfg.Retry.MaxAge.Duration, KeepPassed: cfg.Retry.KeepPassed.Duration,
		ExpiredText: cfg.Retry.ExpiredText}
}

func closeIf(owns bool, l retry.Ledger) {
	if owns && l != nil {
		l.Close()
	}
}

func newHost(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options, kv plugins.KVStore) (*plugins.Host, error) {
	cacheDir := cfg.Resolve(cfg.Runtime.CompilationCache)
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o750); err != nil {
			return nil, cfg.Errorf("runtime.compilation_cache", "%v", err)
		}
	}
	host, err := plugins.NewHost(ctx, plugins.HostConfig{CompilationCacheDir: cacheDir, Logger: log, Clock: opts.Clock,
		KV: kv, Observer: hostObserver{opts.Metrics}})
	if err != nil {
		return nil, cfg.Errorf("runtime", "starting the Wasm runtime: %v", err)
	}
	return host, nil
}

// LoadPlugins loads every configured plugin. It tries them all and reports
// every failure, each located at its [[plugins]] block, so one run of
// `wasmilter check` shows everything to fix. On error nothing is left open.
//
// The plugins load concurrently, at most GOMAXPROCS at once: loading is CPU
// work (wazero decodes and validates each module, then maps its machine
// code from the compilation cache and creates the first instance), so a
// start with three Go modules takes about the time of the slowest one on a
// machine with as many cores.
func LoadPlugins(ctx context.Context, host *plugins.Host, cfg *config.Config) ([]*plugins.Plugin, error) {
	loaded, errs := loadPlugins(ctx, host, cfg)
	if errs != nil {
		return nil, errs
	}
	return loaded, nil
}

// loadPlugins is LoadPlugins with its errors as config.Errors, for callers
// that report them together with others.
func loadPlugins(ctx context.Context, host *plugins.Host, cfg *config.Config) ([]*plugins.Plugin, config.Errors) {
	loaded := make([]*plugins.Plugin, len(cfg.Plugins))
	errs := make([]*config.Error, len(cfg.Plugins))
	forEachConcurrently(len(cfg.Plugins), func(i int) {
		loaded[i], errs[i] = loadPlugin(ctx, host, cfg, i)
	})
	var failed config.Errors
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err) // in config order, whatever order they finished in
		}
	}
	if len(failed) > 0 {
		closePlugins(ctx, loaded)
		return nil, failed
	}
	return loaded, nil
}

// forEachConcurrently calls f(0) … f(n-1), at most GOMAXPROCS at a time,
// and returns when every call has.
func forEachConcurrently(n int, f func(i int)) {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// closePlugins closes the plugins that loaded (nil entries did not).
func closePlugins(ctx context.Context, ps []*plugins.Plugin) {
	for _, p := range ps {
		if p != nil {
			p.Close(ctx)
		}
	}
}

func loadPlugin(ctx context.Context, host *plugins.Host, cfg *config.Config, i int) (*plugins.Plugin, *config.Error) {
	pc := &cfg.Plugins[i]
	key := func(k string) string { return fmt.Sprintf("plugins[%d]%s", i, k) }
	mod, source, err := readModule(cfg, pc.Path)
	if err != nil {
		return nil, cfg.Errorf(key(".path"), "%v", err)
	}
	onError, err := plugins.ParseOnError(pc.OnError)
	if err != nil {
		return nil, cfg.Errorf(key(".on_error"), "%v", err)
	}
	entries, err := config.FlattenPluginConfig(pc.Config)
	if err != nil {
		return nil, cfg.Errorf(key(".config"), "%v", err)
	}
	p, err := host.Load(ctx, plugins.Spec{
		Name: pc.Name, Source: source, Wasm: mod.Wasm, Env: mod.Env, Timeout: pc.Timeout.Duration,
		MemoryLimit: uint64(pc.Memory), OnError: onError, Config: entries, MaxInstances: pc.MaxInstances,
	})
	if err != nil {
		return nil, cfg.Errorf(key(""), "%v", err)
	}
	return p, nil
}

// readModule returns the module a plugin path names (a file, or
// builtin:NAME) and a name for its source.
func readModule(cfg *config.Config, pluginPath string) (builtin.Module, string, error) {
	if name, ok := strings.CutPrefix(pluginPath, config.BuiltinPrefix); ok {
		m, found := builtin.Lookup(name)
		if !found {
			return builtin.Module{}, "", fmt.Errorf("no builtin plugin %q (this wasmilter has: %v)", name, builtin.Names())
		}
		return m, pluginPath, nil
	}
	path := cfg.Resolve(pluginPath)
	wasm, err := os.ReadFile(path)
	if err != nil {
		return builtin.Module{}, "", fmt.Errorf("reading plugin: %w", err)
	}
	return builtin.Module{Wasm: wasm}, path, nil
}

func (s *Server) listenConfigured() (net.Listener, error) {
	mode, err := s.cfg.Milter.Mode()
	if err != nil {
		return nil, s.cfg.Errorf("milter.socket_mode", "%v", err)
	}
	if network, addr, err := milter.ParseAddress(s.cfg.Milter.Listen); err == nil && network == "unix" {
		if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
			return nil, s.cfg.Errorf("milter.listen", "%v", err)
		}
	}
	ln, err := milter.ListenSocket(s.cfg.Milter.Listen, milter.SocketOptions{Mode: os.FileMode(mode),
		Owner: s.cfg.Milter.SocketOwner, Group: s.cfg.Milter.SocketGroup})
	if err != nil {
		return nil, s.cfg.Errorf("milter.listen", "%v", err)
	}
	return ln, nil
}

// Cache returns the property cache.
func (s *Server) Cache() *cache.Cache { return s.cache }

// adminCache is the property cache as the admin API sees it.
type adminCache struct{ c *cache.Cache }

func (a adminCache) StatsJSON() any { return a.c.Stats() }

func (a adminCache) Flush() int { return a.c.Flush() }

func (a adminCache) FlushKey(key string) (bool, error) {
	k, err := cache.ParseKey(key)
	if err != nil {
		return false, err
	}
	return a.c.Delete(k), nil
}

// Chain returns the current plugin chain.
func (s *Server) Chain() *plugins.Chain { return s.currentGeneration().chain }

// Pipeline returns the current pipeline, for driving messages without an MTA.
func (s *Server) Pipeline() *pipeline.Pipeline { return s.currentGeneration().pipeline }

// Listen opens the configured listener.
func (s *Server) Listen() (net.Listener, error) { return s.listen() }

// ListenAdmin opens the admin API's listener; nil when [admin] listen is "".
func (s *Server) ListenAdmin() (net.Listener, error) {
	if s.admin == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Admin.Listen)
	if err != nil {
		return nil, s.cfg.Errorf("admin.listen", "%v", err)
	}
	return ln, nil
}

// ServeAdmin serves the admin API on ln until Shutdown or Close; it then
// returns http.ErrServerClosed.
func (s *Server) ServeAdmin(ln net.Listener) error {
	s.log.Info("admin API", "listen", ln.Addr().String(), "token", s.cfg.Admin.Token != "")
	return s.admin.Serve(ln)
}

// Serve serves MTA connections on ln until Shutdown or Close; it then
// returns milter.ErrServerClosed.
//
// While it serves, a janitor purges finished ledger records older than
// keep_passed (and expired ones past their keeping time) every hour, and
// the sweeper asks the delay policy about every waiting message every
// notify.sweep_interval and sends the notices it calls for.
func (s *Server) Serve(ln net.Listener) error {
	s.startJanitor()
	g := s.startServing()
	s.log.Info("serving", "listen", ln.Addr().String(), "plugins", len(g.chain.Plugins()),
		"hooks", g.chain.Hooks().String())
	s.listening.Store(true)
	defer s.listening.Store(false)
	return s.milter.Serve(ln)
}

// Shutdown stops accepting connections, waits for open MTA sessions to end
// until ctx is done, then releases the plugins.
func (s *Server) Shutdown(ctx context.Context) error {
	s.listening.Store(false) // draining: not ready for new sessions
	done := make(chan struct{})
	go func() { // notices in flight finish alongside the MTA sessions
		defer close(done)
		s.currentGeneration().notices.shutdown(ctx)
	}()
	err := s.milter.Shutdown(ctx)
	if s.admin != nil {
		s.admin.Shutdown(ctx)
	}
	<-done
	s.release()
	return err
}

// Close stops everything at once.
func (s *Server) Close() error {
	s.listening.Store(false)
	err := s.milter.Close()
	if s.admin != nil {
		s.admin.Close()
	}
	s.release()
	return err
}

// Release frees the plugins of a server that was built but never served
// (as `wasmilter check` does).
func (s *Server) Release() { s.release() }

func (s *Server) startJanitor() {
	s.janitorOnce.Do(func() {
		go func() {
			defer close(s.janitorDone)
			s.runJanitor(s.janitorCtx)
		}()
	})
}

// stopJanitorAndWait stops the janitor if it runs and keeps it from
// starting later.
func (s *Server) stopJanitorAndWait() {
	s.stopJanitor()
	s.janitorOnce.Do(func() { close(s.janitorDone) })
	<-s.janitorDone
}

func (s *Server) release() {
	s.stopJanitorAndWait()
	s.genMu.Lock()
	gens := s.generations
	s.genMu.Unlock()
	for _, g := range gens {
		g.release(canceled)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.host.Close(ctx); err != nil {
		s.log.Warn("releasing plugins", "err", err)
	}
	if s.ownsLedger {
		if err := s.ledger.Close(); err != nil {
			s.log.Warn("closing the retry ledger", "err", err)
		}
	}
}

// NewLogger builds the logger [log] asks for.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
