// Package server assembles a running wasmilter from a Config: the plugin
// host and chain, the pipeline, and the milter server with its listener.
//
// Building follows Caddy's rule: everything is constructed and checked
// before anything listens, so a server never starts half-configured.
// `wasmilter check` runs the same Build and stops there. Serve and Shutdown
// follow net/http.
package server
