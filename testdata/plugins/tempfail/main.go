//go:build wasip1

// Command tempfail is a test guest: at the headers hook it answers TempFail
// when the message has an X-Test-Tempfail header, and Continue otherwise.
//
// Config keys: code (default 451), enhanced (default "4.7.1"), text (default
// "Try again later").
package main

import "github.com/wasmilter/wasmilter/sdk"

var reply struct {
	code     int
	enhanced string
	text     string
}

func init() {
	sdk.Register(sdk.Plugin{
		Init: func(cfg sdk.Config) error {
			reply.code = cfg.Int("code", 451)
			reply.enhanced = cfg.String("enhanced", "4.7.1")
			reply.text = cfg.String("text", "Try again later")
			return nil
		},
		Headers: func(m *sdk.Message) sdk.Verdict {
			if _, ok := m.Headers().Lookup("X-Test-Tempfail"); ok {
				return sdk.TempFail(reply.code, reply.enhanced, reply.text)
			}
			return sdk.Continue()
		},
	})
}

func main() {}
