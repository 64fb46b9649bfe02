package loadgen

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/milter"
)

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// wantCounts checks that every message got exactly one final action.
func wantCounts(t *testing.T, res *Result, n int64, actions map[string]int64) {
	t.Helper()
	if res.Messages != n || res.Errors != 0 {
		t.Fatalf("messages %d, errors %d; want %d and 0 (samples %q)", res.Messages, res.Errors, n, res.ErrorSamples)
	}
	var sum int64
	for k, v := range res.Actions {
		sum += v
		if actions[k] != v {
			t.Errorf("action %s counted %d times, want %d (all: %v)", k, v, actions[k], res.Actions)
		}
	}
	if sum != n {
		t.Errorf("actions add up to %d, want %d: %v", sum, n, res.Actions)
	}
	if res.StoppedBy != "count" {
		t.Errorf("stopped by %q, want count", res.StoppedBy)
	}
}

func TestGoMilterNoOp(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			spec := startGoMilter(t, network, noopServer())
			res := run(t, quick(spec, 40))
			wantCounts(t, res, 40, map[string]int64{ActionAccept: 40})
			if res.Negotiated == nil || res.Negotiated.Version != 2 {
				t.Errorf("negotiated %+v, want version 2 (go-milter's server answers 2)", res.Negotiated)
			}
			if res.Sessions < 8 || res.Sessions > 40 {
				t.Errorf("%d sessions for 40 messages at up to 5 per connection, want 8 to 40", res.Sessions)
			}
			if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
				t.Errorf("latency %+v", res.Latency)
			}
		})
	}
}

// A milter that asks for neither header nor body must get neither.
func TestNegotiatedStagesAreNotSent(t *testing.T) {
	var headers, chunks atomic.Int64
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &countingMilter{headers: &headers, chunks: &chunks} },
		Protocol:  gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoBody,
	}
	res := run(t, quick(startGoMilter(t, "tcp", srv), 10))
	wantCounts(t, res, 10, map[string]int64{ActionAccept: 10})
	if headers.Load() != 0 || chunks.Load() != 0 {
		t.Errorf("milter got %d headers and %d body chunks after negotiating them away", headers.Load(), chunks.Load())
	}
	// Control: the same milter asking for everything gets it.
	srv = &gomilter.Server{NewMilter: func() gomilter.Milter { return &countingMilter{headers: &headers, chunks: &chunks} }}
	run(t, quick(startGoMilter(t, "tcp", srv), 10))
	if headers.Load() != 10*20 || chunks.Load() != 10 {
		t.Errorf("milter got %d headers and %d body chunks, want 200 and 10", headers.Load(), chunks.Load())
	}
}

type countingMilter struct {
	gomilter.NoOpMilter
	headers, chunks *atomic.Int64
}

func (m *countingMilter) Header(string, string, *gomilter.Modifier) (gomilter.Response, error) {
	m.headers.Add(1)
	return gomilter.RespContinue, nil
}

func (m *countingMilter) BodyChunk([]byte, *gomilter.Modifier) (gomilter.Response, error) {
	m.chunks.Add(1)
	return gomilter.RespContinue, nil
}

// Our server sees each message as Postfix would send it, and the header
// it adds is counted.
func TestOurServerAddsHeader(t *testing.T) {
	b := newBackend()
	b.eom = func() (milter.Reply, []milter.Modification) {
		return milter.Reply{}, []milter.Modification{{Kind: milter.AddHeader, Name: "X-Checked", Value: "yes"}}
	}
	for _, network := range []string{"tcp", "unix"} {
		res := run(t, quick(startOurs(t, network, b), 30))
		wantCounts(t, res, 30, map[string]int64{ActionContinue: 30})
		if got := res.Modifications[ModAddHeader]; got != 30 || len(res.Modifications) != 1 {
			t.Errorf("modifications %v, want add_header 30", res.Modifications)
		}
		if res.Negotiated.Version != 6 {
			t.Errorf("negotiated %+v, want version 6", res.Negotiated)
		}
	}
	msg := DefaultMessage()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.messages != 60 || len(b.messageIDs) != 60 {
		t.Fatalf("server saw %d messages with %d distinct Message-IDs, want 60 and 60", b.messages, len(b.messageIDs))
	}
	for i := range b.messages {
		if b.headers[i] != len(msg.Headers) || b.bodyBytes[i] != len(msg.Body) || b.queueIDs[i] == "" {
			t.Fatalf("message %d: %d headers, %d body bytes, queue id %q; want %d, %d and an id",
				i, b.headers[i], b.bodyBytes[i], b.queueIDs[i], len(msg.Headers), len(msg.Body))
		}
	}
}

func TestVerdictsAreCounted(t *testing.T) {
	reject := milter.Reply{Action: milter.Reject}
	tests := []struct {
		name  string
		setup func(b *backend)
		rcpts int
		want  map[string]int64
	}{
		{"reject at MAIL", func(b *backend) { b.mail = reject }, 1, map[string]int64{ActionReject: 20}},
		{"tempfail at MAIL", func(b *backend) { b.mail = milter.Reply{Action: milter.TempFail} }, 1, map[string]int64{ActionTempFail: 20}},
		{"custom 550 at end", func(b *backend) {
			b.eom = func() (milter.Reply, []milter.Modification) {
				return milter.Reply{Action: milter.Reject, Code: 550, Enhanced: "5.7.1", Text: "no"}, nil
			}
		}, 1, map[string]int64{ActionReply5xx: 20}},
		{"discard at end", func(b *backend) {
			b.eom = func() (milter.Reply, []milter.Modification) { return milter.Reply{Action: milter.Discard}, nil }
		}, 1, map[string]int64{ActionDiscard: 20}},
		{"one of two recipients refused", func(b *backend) {
			// Recipients are numbered user<seq*rcpts+i>: with two, one is even.
			b.rcpt = func(to string) milter.Reply {
				local, _, _ := strings.Cut(to, "@")
				if strings.ContainsAny(local[len(local)-1:], "02468") {
					return reject
				}
				return milter.Reply{}
			}
		}, 2, map[string]int64{ActionContinue: 20}},
		{"every recipient refused", func(b *backend) { b.rcpt = func(string) milter.Reply { return reject } },
			3, map[string]int64{ActionReject: 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend()
			tt.setup(b)
			cfg := quick(startOurs(t, "tcp", b), 20)
			cfg.Rcpts = tt.rcpts
			wantCounts(t, run(t, cfg), 20, tt.want)
		})
	}
}

// A verdict at CONNECT answers the session's one message and ends it.
func TestSessionLevelReject(t *testing.T) {
	b := newBackend()
	b.connect = milter.Reply{Action: milter.Reject}
	res := run(t, quick(startOurs(t, "tcp", b), 12))
	wantCounts(t, res, 12, map[string]int64{ActionReject: 12})
	if res.Sessions != 12 {
		t.Errorf("%d sessions, want 12: a rejected session carries no more mail", res.Sessions)
	}
}

// Misbehaving milters make the run fail with a clear error, not hang.
func TestMilterFaultsAreErrors(t *testing.T) {
	tests := []struct {
		name      string
		at        byte
		misbehave func(c net.Conn)
		want      string
	}{
		{"garbage reply", 'M', func(c net.Conn) { writePacket(c, 'Z', nil) }, "unknown reply 'Z'"},
		{"garbage length", 'H', func(c net.Conn) { c.Write([]byte{0xff, 0xff, 0xff, 0xff, 'c'}) }, "reply packet length"},
		{"closes mid-message", 'R', func(c net.Conn) {}, "milter closed the connection at RCPT"},
		{"modification not negotiated", 'E', func(c net.Conn) {
			writePacket(c, 'h', []byte("X-A\x00b\x00"))
			writePacket(c, 'c', nil)
		}, "add_header without the negotiated action"},
		{"modification before end", 'T', func(c net.Conn) { writePacket(c, 'h', []byte("X-A\x00b\x00")) }, "outside end of message"},
		{"malformed reply code", 'E', func(c net.Conn) { writePacket(c, 'y', []byte("250 ok\x00")) }, "malformed reply code"},
		{"silent", 'E', func(c net.Conn) { time.Sleep(2 * time.Second) }, "no reply at EOM within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := quick(rawMilter(t, tt.at, tt.misbehave), 10)
			cfg.Timeout = 300 * time.Millisecond
			res, err := Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error %v, want one containing %q", err, tt.want)
			}
			if res == nil || res.Errors == 0 || res.StoppedBy != "errors" {
				t.Fatalf("result %+v, want errors counted and the run stopped by them", res)
			}
		})
	}
}

func TestConnectionRefusedNamesTheAddress(t *testing.T) {
	ln, spec := listen(t, "tcp")
	ln.Close()
	_, err := Run(context.Background(), quick(spec, 5))
	if err == nil || !strings.Contains(err.Error(), spec) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %v, want one naming %s and the refusal", err, spec)
	}
}

func TestDurationBoundStops(t *testing.T) {
	cfg := quick(startGoMilter(t, "tcp", noopServer()), 0)
	cfg.Duration = 200 * time.Millisecond
	res := run(t, cfg)
	if res.StoppedBy != "duration" || res.Messages == 0 || res.Errors != 0 {
		t.Fatalf("stopped by %q after %d messages, %d errors; want duration, some, none", res.StoppedBy, res.Messages, res.Errors)
	}
}

func TestRunNeedsABound(t *testing.T) {
	_, err := Run(context.Background(), Config{Milter: "inet:127.0.0.1:1"})
	if err == nil {
		t.Fatal("a run with neither count nor duration was accepted")
	}
}

func TestCountBoundIsExact(t *testing.T) {
	cfg := quick(startGoMilter(t, "unix", noopServer()), 37) // not a multiple of 5 per connection
	cfg.Concurrency = 3
	wantCounts(t, run(t, cfg), 37, map[string]int64{ActionAccept: 37})
}

func TestServerCPUFromProc(t *testing.T) {
	cfg := quick(startGoMilter(t, "tcp", noopServer()), 20)
	cfg.ServerPID = 1 // any live process will do; the test's own server runs in-process
	res := run(t, cfg)
	if res.ServerCPU == nil || res.ServerCPU.PID != 1 || res.ClientCPU == nil {
		t.Fatalf("cpu %+v / %+v", res.ServerCPU, res.ClientCPU)
	}
	cfg.ServerPID = 1 << 30
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "/proc/") {
		t.Fatalf("nonexistent pid: error %v", err)
	}
}
