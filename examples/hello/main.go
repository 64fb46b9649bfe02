//go:build wasip1

// Command hello is a small example plugin, written with the Go SDK:
//
//   - every message gets a header "X-Hello: <greeting>";
//   - a message whose Subject contains the configured word (compared without
//     regard to case) is rejected with 550 5.7.1.
//
// Config keys ([plugins.config]):
//
//	greeting    = "Hello from wasmilter"   # the X-Hello value (this is the default)
//	reject_word = "lottery"                # empty or absent: reject nothing
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm ./examples/hello
package main

import (
	"errors"
	"strings"

	"github.com/wasmilter/wasmilter/sdk"
)

// settings is the plugin's configuration, set once per instance by Init and
// only read by the handlers.
var settings struct {
	greeting   string
	rejectWord string // lower case
}

func init() {
	sdk.Register(sdk.Plugin{
		Init:    configure,
		Message: greet,
	})
}

func configure(cfg sdk.Config) error {
	settings.greeting = cfg.String("greeting", "Hello from wasmilter")
	settings.rejectWord = strings.ToLower(cfg.String("reject_word", ""))
	if strings.TrimSpace(settings.greeting) == "" {
		return errors.New(`config key "greeting" must not be empty`)
	}
	return nil
}

// greet runs at the end of the message, when the headers are all known and
// headers can still be added.
func greet(m *sdk.Message) sdk.Verdict {
	subject := strings.ToLower(m.Headers().Get("Subject"))
	if settings.rejectWord != "" && strings.Contains(subject, settings.rejectWord) {
		m.Logf(sdk.LogInfo, "rejecting message %s: subject contains %q", m.QueueID(), settings.rejectWord)
		return sdk.Reject(550, "5.7.1", "Message refused by the hello example policy")
	}
	m.AddHeader("X-Hello", settings.greeting)
	return sdk.Continue()
}

func main() {}
