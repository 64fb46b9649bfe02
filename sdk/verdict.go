package sdk

import (
	"strconv"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Verdict is what a handler decides. Build one with [Continue], [Accept],
// [Discard], [Reject] or [TempFail]; the zero Verdict is Continue.
type Verdict struct {
	kind  abi.Verdict
	reply abi.Reply
}

// Continue raises no objection: later plugins and later stages run.
func Continue() Verdict { return Verdict{kind: abi.Continue} }

// Accept accepts the message; no later plugin is asked about it.
func Accept() Verdict { return Verdict{kind: abi.Accept} }

// Discard accepts the message and silently drops it.
func Discard() Verdict { return Verdict{kind: abi.Discard} }

// Reject refuses permanently. code is a 5xx reply code and enhanced an
// RFC 3463 code such as "5.7.1"; a zero code (with empty enhanced and text)
// lets the MTA use its default reply. At the rcpt hook only the current
// recipient is refused.
func Reject(code int, enhanced, text string) Verdict {
	return Verdict{kind: abi.Reject, reply: abi.Reply{Code: code, Enhanced: enhanced, Text: text}}
}

// TempFail refuses temporarily so the client retries. code is a 4xx reply
// code and enhanced an RFC 3463 code such as "4.7.1"; a zero code (with
// empty enhanced and text) lets the MTA use its default reply.
func TempFail(code int, enhanced, text string) Verdict {
	return Verdict{kind: abi.TempFail, reply: abi.Reply{Code: code, Enhanced: enhanced, Text: text}}
}

// Kind returns the verdict's ABI code.
func (v Verdict) Kind() abi.Verdict { return v.kind }

// Reply returns the custom SMTP reply, zero when the MTA's default is used.
func (v Verdict) Reply() abi.Reply { return v.reply }

// String renders the verdict for logs, e.g. `reject 550 5.7.1 "no thanks"`.
func (v Verdict) String() string {
	s := v.kind.String()
	if v.reply.IsZero() {
		return s
	}
	s += " " + strconv.Itoa(v.reply.Code)
	if v.reply.Enhanced != "" {
		s += " " + v.reply.Enhanced
	}
	return s + " " + strconv.Quote(v.reply.Text)
}
