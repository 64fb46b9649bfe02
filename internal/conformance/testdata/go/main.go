//go:build wasip1

// Command nolottery is the Go SDK's twin of examples/c and
// examples/assemblyscript: the conformance tests hold all three to the same
// behaviour. At the end of the headers, a message whose Subject contains the
// configured word (case-insensitive) is rejected with 550 5.7.1; any other
// gets "X-Checked-By: nolottery at <macro j>".
package main

import (
	"errors"
	"strings"

	"github.com/wasmilter/wasmilter/sdk"
)

// word is set once per instance by configure; the handler only reads it.
var word string

func init() {
	sdk.Register(sdk.Plugin{Init: configure, Headers: onHeaders})
}

func configure(cfg sdk.Config) error {
	word = strings.ToLower(cfg.String("word", "lottery"))
	if word == "" {
		return errors.New(`config key "word" must not be empty`)
	}
	return nil
}

func onHeaders(m *sdk.Message) sdk.Verdict {
	if strings.Contains(strings.ToLower(m.Headers().Get("Subject")), word) {
		m.Logf(sdk.LogInfo, "rejecting message %s: subject contains %q", m.QueueID(), word)
		return sdk.Reject(550, "5.7.1", "We do not take part in lotteries")
	}
	checked := "nolottery"
	if host, ok := m.Macro("j"); ok {
		checked += " at " + host
	}
	m.AddHeader("X-Checked-By", checked)
	return sdk.Continue()
}

func main() {}
