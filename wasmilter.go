// Package wasmilter is a milter server for Postfix and Sendmail whose mail
// policies run as sandboxed WebAssembly plugins.
//
// This root package holds only what must live beside the repository's
// top-level files: the default configuration, embedded so that the binary
// runs without any file. The server itself is in the packages below; the
// command is cmd/wasmilter.
package wasmilter

import _ "embed"

// DefaultConfig is the repository's config.toml: every key with its default
// value and a comment. It is the built-in configuration and the base every
// user's file is decoded on top of.
//
//go:embed config.toml
var DefaultConfig []byte

// Version is the release version, set at build time with
// -ldflags "-X github.com/wasmilter/wasmilter.Version=v1.2.3".
var Version = "devel"
