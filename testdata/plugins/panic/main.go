//go:build wasip1

// Command panic is a test guest whose headers handler panics, to check the
// SDK's documented failure path: the panic is logged through the host and
// the call traps, so the host applies the plugin's failure policy.
package main

import "github.com/wasmilter/wasmilter/sdk"

func init() {
	sdk.Register(sdk.Plugin{Headers: func(m *sdk.Message) sdk.Verdict {
		panic("test guest panics on purpose")
	}})
}

func main() {}
