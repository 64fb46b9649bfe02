// Package builtin holds the plugins shipped inside the wasmilter binary, as
// compiled Wasm embedded at build time: the stamping policy ("stamp") and
// the delay-notification policy the retry sweeper asks ("delaynotify").
// Each subdirectory is the Go source of one builtin; the .wasm files next to
// this file are generated from them and committed, so `go install` needs no
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
