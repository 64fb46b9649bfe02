package pipeline

import (
	"fmt"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Limits bound what one message may bring into the pipeline (besides
// Options.MaxHeaders), and say what a message over a limit gets.
type Limits struct {
	// MaxHeaderBytes bounds the header kept for the policy: every field's
	// name and value plus 4 (": " and CRLF); 0 means 4 MiB.
	MaxHeaderBytes int64
	// MaxBodyBytes bounds the body; 0 means 64 MiB. The body is counted
	// only when a plugin reads it: otherwise the MTA is asked not to send it.
	MaxBodyBytes int64
	// OnLimit is what a message over any limit gets.
	OnLimit OnLimit
}

// OnLimit is the configured action for a message over a limit.
type OnLimit int

const (
	// LimitReject refuses the message: 552 5.3.4, the RFC 3463 code for a
	// message too big for policy.
	LimitReject OnLimit = iota
	// LimitAccept passes the message without running the policy on it.
	LimitAccept
	// LimitTruncate runs the policy on what fits: headers past the limit
	// are not shown to plugins, the body is no longer counted.
	LimitTruncate
)

var onLimitNames = []string{"reject", "accept", "truncate"}

func (o OnLimit) String() string {
	if o >= 0 && int(o) < len(onLimitNames) {
		return onLimitNames[o]
	}
	return fmt.Sprintf("on_limit(%d)", int(o))
}

// ParseOnLimit reads a configured on_limit.
func ParseOnLimit(s string) (OnLimit, error) {
	for i, n := range onLimitNames {
		if s == n {
			return OnLimit(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want reject, accept or truncate", s)
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 4 << 20
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 64 << 20
	}
	return l
}

// The replies of on_limit = "reject".
var (
	headerTooLarge = abi.Reply{Code: 552, Enhanced: "5.3.4", Text: "Message header too large"}
	messageTooBig  = abi.Reply{Code: 552, Enhanced: "5.3.4", Text: "Message too big"}
)

// limitState is one message's count against the limits.
type limitState struct {
	dropped     int    // header fields not kept
	headerBytes int64  // of the fields kept
	bodyBytes   int64  // counted while the body is under its limit
	over        string // the first limit exceeded: "max_headers", "max_header_bytes" or "max_body_bytes"
}

// admitHeader counts a header field and reports whether it is kept. Past a
// limit nothing more is kept, whatever on_limit says: the limits bound the
// memory one message can take.
func (s *session) admitHeader(name, value string) bool {
	ls := &s.msg.limits
	size := int64(len(name) + len(value) + 4)
	switch {
	case ls.dropped > 0:
	case len(s.ev.Headers) >= s.p.maxHeaders:
		ls.over = "max_headers"
	case ls.headerBytes+size > s.p.limits.MaxHeaderBytes:
		ls.over = "max_header_bytes"
	default:
		ls.headerBytes += size
		return true
	}
	ls.dropped++
	return false
}

// headerLimit applies on_limit at end of header to a message whose header
// went over a limit. It reports whether the message is settled here.
func (s *session) headerLimit() (milter.Reply, bool) {
	ls := &s.msg.limits
	if ls.dropped == 0 {
		return milter.Reply{}, false
	}
	s.p.log.Warn("message over a header limit", "queue_id", s.ev.QueueID, "limit", ls.over,
		"on_limit", s.p.limits.OnLimit.String(), "kept", len(s.ev.Headers), "dropped", ls.dropped, "kept_bytes", ls.headerBytes)
	return s.overLimit(abi.HookHeaders, headerTooLarge)
}

// bodyLimit counts a body chunk and applies on_limit once the body goes
// over its limit.
func (s *session) bodyLimit(n int) milter.Reply {
	ls := &s.msg.limits
	if ls.over == "max_body_bytes" || s.msg.ended || s.msg.accepted || s.connAccepted {
		return milter.Reply{}
	}
	ls.bodyBytes += int64(n)
	if ls.bodyBytes <= s.p.limits.MaxBodyBytes {
		return milter.Reply{}
	}
	ls.over = "max_body_bytes"
	s.p.log.Warn("message over the body limit", "queue_id", s.ev.QueueID, "limit", ls.over,
		"on_limit", s.p.limits.OnLimit.String(), "max_body_bytes", s.p.limits.MaxBodyBytes)
	reply, _ := s.overLimit(abi.HookMessage, messageTooBig)
	return reply
}

// overLimit settles a message over a limit as on_limit says: rejected with
// reply, accepted without policy, or (truncate) left to the policy.
func (s *session) overLimit(at abi.Hook, reply abi.Reply) (milter.Reply, bool) {
	s.ev.Hook = at // where the outcome is counted
	switch s.p.limits.OnLimit {
	case LimitReject:
		return s.settle(plugins.Result{Verdict: abi.Reject, Reply: reply, DecidedBy: "limits"}), true
	case LimitAccept:
		return s.settle(plugins.Result{Verdict: abi.Accept, DecidedBy: "limits"}), true
	}
	return milter.Reply{}, false
}
