package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wasmilter/wasmilter/retry"
)

// Options configure the API.
type Options struct {
	Ledger retry.Ledger // nil: the queue endpoints answer 404 "no ledger configured"
	Cache  Cache        // nil: the cache endpoints answer 404
	Token  string       // "" : no token required
	Clock  func() time.Time
	Logger *slog.Logger
	// Reload reloads the configuration from where it came from (POST
	// /v1/reload) and returns the settings that need a restart; nil: the
	// endpoint answers 501.
	Reload func(context.Context) (restartNeeded []string, err error)
	// Ready answers /readyz: nil when the server is serving, otherwise
	// why not. nil: /readyz answers like /healthz.
	Ready func(ctx context.Context) error
	// Metrics serves /metrics; nil: 404.
	Metrics http.Handler
	// Pprof serves net/http/pprof under /debug/pprof/ ([admin] pprof).
	Pprof bool
}

// readyTimeout bounds one readiness check: a probe must get its answer
// before its own timeout (often 1 s), and an unreachable ledger must read
// as "not ready", not as a hung probe.
const readyTimeout = 900 * time.Millisecond

// Cache is what the API needs of the property cache: its counters, and
// flushing. Stats is encoded as JSON as it is.
type Cache interface {
	StatsJSON() any
	Flush() int
	FlushKey(key string) (bool, error)
}

// NewHandler returns the API's HTTP handler.
func NewHandler(o Options) http.Handler {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &api{o: o}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /v1/queue", a.withLedger(a.listQueue))
	mux.HandleFunc("GET /v1/queue/{id}", a.withLedger(a.showRecord))
	mux.HandleFunc("POST /v1/queue/{id}/release", a.withLedger(a.transition("release")))
	mux.HandleFunc("POST /v1/queue/{id}/hold", a.withLedger(a.transition("hold")))
	mux.HandleFunc("POST /v1/queue/{id}/expire", a.withLedger(a.transition("expire")))
	mux.HandleFunc("POST /v1/queue/purge", a.withLedger(a.purge))
	mux.HandleFunc("GET /v1/cache/stats", a.withCache(a.cacheStats))
	mux.HandleFunc("POST /v1/cache/flush", a.withCache(a.cacheFlush))
	mux.HandleFunc("POST /v1/reload", a.reload)
	if o.Pprof {
		handlePprof(mux)
	}
	// The probes are answered without the token: a load balancer, systemd
	// or an orchestrator probing liveness should not hold the admin
	// secret, and all they learn is up or down and, when down, why.
	probes := http.NewServeMux()
	probes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, http.StatusOK, "ok")
	})
	probes.HandleFunc("GET /readyz", a.ready)
	probes.Handle("/", a.authorize(mux))
	return probes
}

// ready answers 200 "ready" while the server serves, otherwise 503 with
// the reason on one line.
func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	if a.o.Ready == nil {
		writePlain(w, http.StatusOK, "ready")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := a.o.Ready(ctx); err != nil {
		writePlain(w, http.StatusServiceUnavailable, "not ready: "+oneLine(err.Error()))
		return
	}
	writePlain(w, http.StatusOK, "ready")
}

// writePlain answers a probe with one line of text, which is what probes
// and people with curl read.
func writePlain(w http.ResponseWriter, status int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(line + "\n"))
}

// oneLine keeps a reason on one line, whatever a wrapped error carried.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

type api struct{ o Options }

// authorize requires the bearer token when one is configured.
func (a *api) authorize(next http.Handler) http.Handler {
	if a.o.Token == "" {
		return next
	}
	want := []byte("Bearer " + a.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *api) withLedger(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Ledger == nil {
			writeError(w, http.StatusNotFound, errors.New("no retry ledger is configured ([retry] store)"))
			return
		}
		h(w, r)
	}
}

func (a *api) withCache(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.o.Cache == nil {
			writeError(w, http.StatusNotFound, errors.New("no property cache is configured"))
			return
		}
		h(w, r)
	}
}

func (a *api) cacheStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.o.Cache.StatsJSON())
}

func (a *api) cacheFlush(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		n := a.o.Cache.Flush()
		a.o.Logger.Info("admin: property cache flushed", "entries", n)
		writeJSON(w, http.StatusOK, map[string]int{"flushed": n})
		return
	}
	found, err := a.o.Cache.FlushKey(key)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"flushed": found})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, Error{Error: strings.TrimSpace(err.Error())})
}

// reload answers POST /v1/reload: 200 with the settings that need a
// restart, or 422 with why the new configuration was refused (the running
// one stays).
func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	if a.o.Reload == nil {
		writeError(w, http.StatusNotImplemented, errors.New("this server cannot reload (it was not started from a config it can read again)"))
		return
	}
	restart, err := a.o.Reload(r.Context())
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err)
		return
	}
	if restart == nil {
		restart = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "restart_needed": restart})
}
