package admin

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof registers Go's profiler on mux, the token-guarded routes,
// under the paths `go tool pprof` expects. It is registered on this mux
// only, not on http.DefaultServeMux (importing net/http/pprof does that
// too, but the admin server never serves the default mux).
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, goroutine, allocs, … by name
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
