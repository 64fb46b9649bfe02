//go:build wasip1

// Command panic is a test guest whose headers handler panics, to check the
// SDK's documented failure path: the panic is logged through the host and
// the call traps, so the host applies the plugin's failure policy. With
// config panic_in = "init" it panics in Init instead, so the host must
// refuse to load it.
package main

import "github.com/wasmilter/wasmilter/sdk"

func init() {
	sdk.Register(sdk.Plugin{
		Init: func(cfg sdk.Config) error {
			if cfg.String("panic_in", "headers") == "init" {
				panic("test guest panics in init on purpose")
			}
			return nil
		},
		Headers: func(m *sdk.Message) sdk.Verdict {
			panic("test guest panics on purpose")
		},
	})
}

func main() {}
