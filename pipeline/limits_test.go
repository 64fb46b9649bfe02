package pipeline

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/milter"
)

// limitedPipeline is newPipeline with limits and a log to read.
func limitedPipeline(t *testing.T, maxHeaders int, l Limits) (*Pipeline, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	return New(Options{Chain: sharedChain(t), Stamps: unsignedCodec, Clock: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), MaxHeaders: maxHeaders, Limits: l}), &logs
}

// manyHeaders is a message header of n fields after the usual three.
func manyHeaders(id string, n int) [][2]string {
	h := plainHeaders(id)
	for i := 0; i < n; i++ {
		h = append(h, [2]string{fmt.Sprintf("X-Filler-%d", i), "some value"})
	}
	return h
}

func TestHeaderLimits(t *testing.T) {
	// 13 fields, over max_headers = 5; or a 2,000-byte field, over 1 KiB.
	tooMany := msg{from: "a@example.org", rcpts: []string{"b@example.net"}, headers: manyHeaders("many", 10)}
	tooBig := msg{from: "a@example.org", rcpts: []string{"b@example.net"},
		headers: plainHeaders("big", [2]string{"X-Big", strings.Repeat("x", 2000)})}
	limits := func(on OnLimit) Limits { return Limits{MaxHeaderBytes: 1024, OnLimit: on} }
	for _, tc := range []struct {
		name  string
		m     msg
		on    OnLimit
		limit string
	}{
		{"count/reject", tooMany, LimitReject, "max_headers"},
		{"bytes/reject", tooBig, LimitReject, "max_header_bytes"},
		{"count/accept", tooMany, LimitAccept, "max_headers"},
		{"bytes/accept", tooBig, LimitAccept, "max_header_bytes"},
		{"count/truncate", tooMany, LimitTruncate, "max_headers"},
		{"bytes/truncate", tooBig, LimitTruncate, "max_header_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, logs := limitedPipeline(t, 5, limits(tc.on))
			s := p.NewOfflineSession(macros{"i": "Q1"})
			defer s.Close()
			reply, mods := tc.m.send(t, s)
			switch tc.on {
			case LimitReject:
				want := milter.Reply{Action: milter.Reject, Code: 552, Enhanced: "5.3.4", Text: "Message header too large"}
				if reply != want || len(mods) != 0 {
					t.Fatalf("got %+v %+v, want %+v", reply, mods, want)
				}
			case LimitAccept:
				if reply != (milter.Reply{Action: milter.Accept}) || len(mods) != 0 {
					t.Fatalf("got %+v %+v, want accept without policy (no stamp)", reply, mods)
				}
			case LimitTruncate:
				if reply.Action != milter.Continue {
					t.Fatalf("got %+v, want the policy to run", reply)
				}
				if _, n := header(mods, "X-Wasmilter-Stamp"); n != 1 {
					t.Errorf("no stamp: %+v", mods)
				}
				want := "5"
				if tc.limit == "max_header_bytes" {
					want = "3" // the three small fields fit, the big one does not
				}
				if got, _ := header(mods, "X-Header-Count"); got != want {
					t.Errorf("the policy saw %s headers, want %s", got, want)
				}
			}
			line := fmt.Sprintf("limit=%s on_limit=%s", tc.limit, tc.on)
			if !strings.Contains(logs.String(), line) || !strings.Contains(logs.String(), "queue_id=Q1") {
				t.Errorf("no log line with %q and the queue ID:\n%s", line, logs)
			}

			// The next message of the connection starts with fresh counts.
			ok := msg{from: "a@example.org", rcpts: []string{"b@example.net"}, headers: plainHeaders("next")}
			if reply, mods := ok.send(t, s); reply.Action != milter.Continue || len(mods) == 0 {
				t.Errorf("next message: %+v %+v", reply, mods)
			}
		})
	}
}

func TestHeaderLimitsAreInclusive(t *testing.T) {
	h := plainHeaders("exact")
	var size int64
	for _, f := range h {
		size += int64(len(f[0]) + len(f[1]) + 4)
	}
	p, _ := limitedPipeline(t, len(h), Limits{MaxHeaderBytes: size})
	s := p.NewOfflineSession(macros{})
	defer s.Close()
	if reply, _ := (msg{from: "a@example.org", rcpts: []string{"b@example.net"}, headers: h}).send(t, s); reply.Action != milter.Continue {
		t.Fatalf("a message exactly at both limits: %+v", reply)
	}
}

func TestBodyLimit(t *testing.T) {
	for _, on := range []OnLimit{LimitReject, LimitAccept, LimitTruncate} {
		t.Run(on.String(), func(t *testing.T) {
			p, logs := limitedPipeline(t, 0, Limits{MaxBodyBytes: 100, OnLimit: on})
			s := p.NewOfflineSession(macros{"i": "Q2"})
			defer s.Close()
			s.Mail("a@example.org", nil)
			s.Rcpt("b@example.net", nil)
			for _, h := range plainHeaders("body") {
				s.Header(h[0], h[1])
			}
			if r := s.EndOfHeaders(); r.Action != milter.Continue {
				t.Fatalf("end of header: %+v", r)
			}
			chunk := []byte(strings.Repeat("x", 60))
			if r := s.BodyChunk(chunk); r.Action != milter.Continue {
				t.Fatalf("60 of 100 body bytes: %+v", r)
			}
			r := s.BodyChunk(chunk)
			switch on {
			case LimitReject:
				want := milter.Reply{Action: milter.Reject, Code: 552, Enhanced: "5.3.4", Text: "Message too big"}
				if r != want {
					t.Fatalf("over the body limit: %+v, want %+v", r, want)
				}
				s.Abort() // the milter server ends a message its reply ended
			case LimitAccept:
				if r != (milter.Reply{Action: milter.Accept}) {
					t.Fatalf("over the body limit: %+v, want accept", r)
				}
				s.Abort()
			case LimitTruncate:
				if r.Action != milter.Continue {
					t.Fatalf("over the body limit: %+v, want continue", r)
				}
				if r, mods := s.EndOfMessage(); r.Action != milter.Continue || len(mods) == 0 {
					t.Fatalf("end of message: %+v %+v, want the policy's changes", r, mods)
				}
			}
			if !strings.Contains(logs.String(), "limit=max_body_bytes on_limit="+on.String()) {
				t.Errorf("no log line for the body limit:\n%s", logs)
			}
		})
	}
}

func TestParseOnLimit(t *testing.T) {
	for _, s := range []string{"reject", "accept", "truncate"} {
		if o, err := ParseOnLimit(s); err != nil || o.String() != s {
			t.Errorf("%s: %v %v", s, o, err)
		}
	}
	if _, err := ParseOnLimit("drop"); err == nil {
		t.Error("drop accepted")
	}
}
