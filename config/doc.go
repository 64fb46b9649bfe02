// Package config reads wasmilter's config.toml strictly.
//
// The defaults are the repository's config.toml itself, embedded in the
// binary (package wasmilter); a user's file is decoded on top of them, so
// every default is written down in exactly one place. Decoding is strict:
// an unknown key is an error, and every error names the file, the line and
// the key ("config.toml:14: plugins[0].on_error: ..."), the way Caddy
// reports its Caddyfile. All errors of a file are reported at once, so
// `wasmilter check` shows everything to fix in one run.
//
// The package only describes and validates; building a server from a
// Config is the job of package server.
package config
