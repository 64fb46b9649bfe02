// Package sdk is the Go guest SDK for wasmilter plugins: it turns the raw
// plugin ABI (sdk/abi, described in sdk/ABI.md) into typed Go, so a plugin
// author registers handlers and never touches pointers or encodings.
//
// A whole plugin:
//
//	//go:build wasip1
//
//	package main
//
//	import (
//		"strings"
//
//		"github.com/wasmilter/wasmilter/sdk"
//		"github.com/wasmilter/wasmilter/sdk/abi"
//	)
//
//	var banned string
//
//	func init() {
//		sdk.Register(sdk.Plugin{
//			Init: func(cfg sdk.Config) error {
//				banned = cfg.String("banned_word", "viagra")
//				return nil // a malformed config value is reported for us
//			},
//			Message: func(m *sdk.Message) sdk.Verdict {
//				if strings.Contains(m.Headers().Get("Subject"), banned) {
//					return sdk.Reject(550, "5.7.1", "no thanks")
//				}
//				if st, ok := m.Stamp(); ok && st.State != abi.StampCarried {
//					m.AddHeader(st.HeaderName, st.HeaderValue)
//				}
//				return sdk.Continue()
//			},
//		})
//	}
//
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// # What the SDK does for you
//
// The SDK exports every hook function (Go cannot make an export conditional)
// and tells the host in its init answer which hooks have a handler, so the
// host asks the MTA only for the stages in use. Each call decodes the event
// the host wrote into the exchange buffer, runs the handler, and encodes the
// verdict together with the actions the handler queued on the [Message]
// (AddHeader, DeleteHeader, ChangeFrom, ...). Actions go out with the
// verdict; the host validates all of it (no CR/LF/NUL, legal header names,
// reply codes that fit the verdict) and applies nothing from an invalid
// answer.
//
// # State
//
// The host runs a pool of instances of each plugin, calls each one for any
// message, and replaces instances at any time (after any failure). Package
// variables are therefore fine for configuration set in Init, but not for
// per-message state: two hooks of one message may reach different instances.
//
// # Cost
//
// Go code in Wasm is several times slower than native, and the Go runtime's
// garbage collector takes milliseconds per cycle there, so the SDK avoids
// garbage: the envelope is decoded into a few small strings, header fields
// stay in the exchange buffer until a handler asks for one (Headers.Get copies
// out just that value), and the answer is encoded into a reused buffer. A
// [Message] and its [Headers] are therefore valid only during the hook call;
// the strings they return may be kept.
//
// # Failures
//
// A handler that panics does not get to decide anything. The SDK recovers the
// panic only to log it (value and stack) through the host's log function, and
// then panics again so the Go runtime exits and the call traps. The host sees
// a failed call, discards the instance (its Go runtime state is no longer
// trustworthy) and applies the plugin's configured failure policy
// (on_error: tempfail, accept or reject). The same happens when the host
// hands the SDK an event it cannot decode. The SDK never invents a verdict
// on a plugin's behalf.
//
// Configuration errors are different: they are known before any mail flows.
// Init returning an error, or any [Config] getter meeting a malformed value,
// makes the plugin refuse to start with that error as the reason.
//
// # Testing a plugin
//
// Everything except the thin export/import glue (files named *_wasip1.go)
// builds on any platform, so the SDK's own tests run with a plain go test.
// Plugins are tested end to end by building them with internal/wasmtest and
// loading them through the host (plugins/), as examples/hello does.
package sdk
