// Package builtin holds the plugins shipped inside the wasmilter binary, as
// compiled Wasm embedded at build time: the stamping policy ("stamp") and
// the delay-notification policy the retry sweeper asks ("delaynotify").
// Each policy is a Go package in its own subdirectory; builtins/ is the one
// Wasm module that holds them all, told by its environment
// (WASMILTER_BUILTIN) which policy to be, so that the server keeps one copy
// of a Go guest's machine code for every builtin. builtins.wasm, next to
// this file, is generated from it and committed, so `go install` needs no
// Wasm toolchain step.
//
// After changing a builtin, the SDK (sdk/, sdk/abi/) or the Go toolchain, run
//
//	go generate ./plugins/builtin
//
// which rebuilds every builtin and rewrites SOURCES.sum, the hashes of the
// sources each was built from. The package's test fails when the tree no
// longer matches SOURCES.sum, so stale Wasm cannot be committed unnoticed.
package builtin
