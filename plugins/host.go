package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// HostConfig configures a [Host]. The zero value is usable.
type HostConfig struct {
	// CompilationCacheDir keeps compiled plugins on disk so a restart does
	// not compile again (a Go plugin: ~0.5 s cold, ~25 ms warm). "" keeps
	// the cache in memory only.
	CompilationCacheDir string
	// Logger receives the host's and the guests' log lines; nil means
	// slog.Default().
	Logger *slog.Logger
	// Limits bound what a guest may hand back; zero means abi.DefaultLimits.
	Limits abi.Limits
	// Clock is the time the "now" host function and Event.Now report;
	// nil means time.Now.
	Clock func() time.Time
	// KV backs the kv_* host functions; nil means plugins have no
	// key/value store (kv_get finds nothing, kv_set and kv_incr refuse).
	KV KVStore
	// Observer is told the duration of every hook call; nil records
	// nothing.
	Observer Observer
}

// Host loads plugins. It owns the compilation cache shared by every plugin's
// runtime. It is safe for concurrent use.
type Host struct {
	cache  wazero.CompilationCache
	logger *slog.Logger
	limits abi.Limits
	clock  func() time.Time
	kv     KVStore
	obs    Observer

	// loading is held shared by every Load in progress, so that Close waits
	// for them before closing the compilation cache they compile into.
	loading sync.RWMutex

	mu      sync.Mutex
	closed  bool
	plugins map[*Plugin]struct{} // loaded and not yet closed
	// runtimes are shared by plugins of the same module and memory limit
	// (see sharedRuntime); guarded by mu.
	runtimes map[runtimeKey]*sharedRuntime
}

// NewHost creates a host. With a CompilationCacheDir the directory is created
// if needed; an unusable directory is an error.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	h := &Host{
		logger:  cfg.Logger,
		limits:  cfg.Limits,
		clock:   cfg.Clock,
		kv:      cfg.KV,
		obs:     cfg.Observer,
		plugins: make(map[*Plugin]struct{}),
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	if h.limits == (abi.Limits{}) {
		h.limits = abi.DefaultLimits
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.obs == nil {
		h.obs = nopObserver{}
	}
	if cfg.CompilationCacheDir == "" {
		h.cache = wazero.NewCompilationCache()
		return h, nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(cfg.CompilationCacheDir)
	if err != nil {
		return nil, fmt.Errorf("plugin compilation cache %q: %w", cfg.CompilationCacheDir, err)
	}
	h.cache = cache
	return h, nil
}

// Close closes every plugin still loaded, then the compilation cache.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.loading.Lock()   // wait for loads in progress; new ones see closed
	h.loading.Unlock() //nolint:staticcheck // an empty critical section is the point

	h.mu.Lock()
	open := make([]*Plugin, 0, len(h.plugins))
	for p := range h.plugins {
		open = append(open, p)
	}
	h.mu.Unlock()

	var errs []error
	for _, p := range open {
		errs = append(errs, p.Close(ctx))
	}
	errs = append(errs, h.cache.Close(ctx))
	return errors.Join(errs...)
}

// register records a loaded plugin so Close can close it; it refuses when
// the host is closed.
func (h *Host) register(p *Plugin) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("host is closed")
	}
	h.plugins[p] = struct{}{}
	return nil
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *Host) forget(p *Plugin) {
	h.mu.Lock()
	delete(h.plugins, p)
	h.mu.Unlock()
}
