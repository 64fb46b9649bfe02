//go:build wasip1

// Command scripted is a test plugin whose behaviour is chosen by the
// message itself, so one plugin can drive every path of the pipeline:
//
//	MAIL FROM accept@...        accept at the mail hook, with a header added
//	MAIL FROM early@...         add a header at the mail hook, continue
//	RCPT TO reject@...          reject that recipient (550 5.1.1)
//	RCPT TO defer@...           tempfail that recipient (450 4.2.0)
//	X-Scripted: discard|reject|tempfail
//	                            discard, reject (554 5.7.1) or tempfail
//	                            (451 4.7.1) at end of header
//	end of message              adds X-Rcpts (recipients it sees) and
//	                            X-Header-Count (headers it sees)
package main

import (
	"strconv"
	"strings"

	"github.com/wasmilter/wasmilter/sdk"
)

func local(addr string) string {
	l, _, _ := strings.Cut(addr, "@")
	return l
}

func main() {}

func init() {
	sdk.Register(sdk.Plugin{
		Mail: func(m *sdk.Message) sdk.Verdict {
			switch local(m.From()) {
			case "accept":
				m.AddHeader("X-Accepted-At", "mail")
				return sdk.Accept()
			case "early":
				m.AddHeader("X-Mail-Stage", "1")
			}
			return sdk.Continue()
		},
		Rcpt: func(m *sdk.Message) sdk.Verdict {
			switch local(m.Rcpt().Addr) {
			case "reject":
				return sdk.Reject(550, "5.1.1", "No such user here")
			case "defer":
				return sdk.TempFail(450, "4.2.0", "Mailbox busy")
			}
			return sdk.Continue()
		},
		Headers: func(m *sdk.Message) sdk.Verdict {
			switch m.Headers().Get("X-Scripted") {
			case "discard":
				return sdk.Discard()
			case "reject":
				return sdk.Reject(554, "5.7.1", "Scripted rejection")
			case "tempfail":
				return sdk.TempFail(451, "4.7.1", "Scripted deferral")
			}
			return sdk.Continue()
		},
		Message: func(m *sdk.Message) sdk.Verdict {
			var rcpts []string
			for _, r := range m.Rcpts() {
				rcpts = append(rcpts, r.Addr)
			}
			m.AddHeader("X-Rcpts", strings.Join(rcpts, ","))
			m.AddHeader("X-Header-Count", strconv.Itoa(m.Headers().Len()))
			return sdk.Continue()
		},
	})
}
