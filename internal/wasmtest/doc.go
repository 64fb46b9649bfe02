// Package wasmtest builds Go plugin guests for tests: BuildGo compiles a
// package of this module for GOOS=wasip1 GOARCH=wasm as a WASI reactor
// (-buildmode=c-shared) and hands back the module bytes, so tests exercise
// plugins exactly as the server loads them. Env is a fixed per-message
// environment (macros, stamp) to run them with through the plugin host.
//
// It deliberately does not import the host (plugins/), so the host's own
// tests can use it without an import cycle.
package wasmtest
