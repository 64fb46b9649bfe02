//go:build wasip1

// Command loop is a test guest that never returns from the headers hook of a
// message carrying an X-Test-Loop header, to exercise the host's per-call
// deadline; other messages pass, so a test can show the next message is
// served normally by a fresh instance.
package main

import "github.com/wasmilter/wasmilter/sdk"

// spins is written on every iteration; a store to a package-level variable
// the compiler cannot prove unobserved keeps the loop a real busy loop.
var spins uint64

func init() {
	sdk.Register(sdk.Plugin{Headers: func(m *sdk.Message) sdk.Verdict {
		if _, ok := m.Headers().Lookup("X-Test-Loop"); !ok {
			return sdk.Continue()
		}
		for {
			spins++
		}
	}})
}

func main() {}
