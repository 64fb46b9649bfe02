//go:build wasip1

// Command notifyall is a careless delay policy for the notifier's tests:
// it asks for a notice about every message, every time, so that only the
// host's guards and the outbox stand between it and the senders.
package main

import "github.com/wasmilter/wasmilter/sdk"

func init() {
	sdk.Register(sdk.Plugin{Delay: func(m *sdk.Message) sdk.Verdict {
		m.Notify("Your message is delayed.")
		return sdk.Continue()
	}})
}

func main() {}
