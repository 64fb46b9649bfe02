package sdk

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func decodeInit(t *testing.T, b []byte) abi.InitAnswer {
	t.Helper()
	a, err := abi.DecodeInitAnswer(b)
	if err != nil {
		t.Fatalf("DecodeInitAnswer: %v", err)
	}
	return a
}

func TestInitReportsHooksFeaturesAndConfig(t *testing.T) {
	useHost(t, newFakeHost())
	var greeting string
	usePlugin(t, Plugin{
		Init:      func(cfg Config) error { greeting = cfg.String("greeting", ""); return nil },
		Headers:   func(*Message) Verdict { return Continue() },
		Message:   func(*Message) Verdict { return Continue() },
		NeedsBody: true,
	})
	n := writeConfig([]abi.ConfigEntry{{Key: "greeting", Values: []string{"hi"}}})
	a := decodeInit(t, runInit(n))
	if a.Error != "" {
		t.Fatalf("init error: %s", a.Error)
	}
	if want := abi.HookSet(0).With(abi.HookHeaders).With(abi.HookMessage); a.Hooks != want {
		t.Errorf("Hooks = %v, want %v", a.Hooks, want)
	}
	if a.Features != abi.FeatureBody {
		t.Errorf("Features = %v", a.Features)
	}
	if greeting != "hi" {
		t.Errorf("Init saw greeting %q", greeting)
	}
}

func TestInitRefusals(t *testing.T) {
	handler := func(*Message) Verdict { return Continue() }
	tests := []struct {
		name    string
		setup   func()
		config  []abi.ConfigEntry
		wantErr string
	}{
		{"no plugin", func() {}, nil, "no plugin registered"},
		{"no handler", func() { registered.register(Plugin{}) }, nil, "no hook handler"},
		{"registered twice", func() {
			registered.register(Plugin{Connect: handler})
			registered.register(Plugin{Connect: handler})
		}, nil, "more than once"},
		{"init error", func() {
			registered.register(Plugin{Connect: handler, Init: func(Config) error { return errors.New("need a key") }})
		}, nil, "need a key"},
		{"malformed value", func() {
			registered.register(Plugin{Connect: handler, Init: func(c Config) error { c.Int("n", 0); return nil }})
		}, []abi.ConfigEntry{{Key: "n", Values: []string{"many"}}}, `config key "n": "many" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			useHost(t, newFakeHost())
			usePlugin(t, Plugin{Connect: handler})
			registered = registry{}
			tt.setup()
			a := decodeInit(t, runInit(writeConfig(tt.config)))
			if !strings.Contains(a.Error, tt.wantErr) {
				t.Errorf("Error = %q, want it to contain %q", a.Error, tt.wantErr)
			}
		})
	}
}

func TestInitLogsUnreadKeys(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	usePlugin(t, Plugin{Init: func(Config) error { return nil }, Connect: func(*Message) Verdict { return Continue() }})
	a := decodeInit(t, runInit(writeConfig([]abi.ConfigEntry{{Key: "gretting", Values: []string{"x"}}})))
	if a.Error != "" {
		t.Fatalf("an unread key refused the plugin: %s", a.Error)
	}
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "gretting") {
		t.Errorf("logs = %q, want a warning naming the unread key", f.logs)
	}
}

func TestInitBadLength(t *testing.T) {
	useHost(t, newFakeHost())
	usePlugin(t, Plugin{Init: func(Config) error { return nil }, Connect: func(*Message) Verdict { return Continue() }})
	a := decodeInit(t, runInit(int32(cap(exchange)+1)))
	if !strings.Contains(a.Error, "exchange buffer") {
		t.Errorf("Error = %q", a.Error)
	}
}

func TestHookAnswer(t *testing.T) {
	useHost(t, newFakeHost())
	usePlugin(t, Plugin{Headers: func(m *Message) Verdict {
		m.AddHeader("X-Seen", m.Headers().Get("subject"))
		return Reject(550, "5.7.1", "no "+m.From())
	}})
	ev := sampleEvent()
	ev.Hook = abi.HookHeaders
	out := runHook(abi.HookHeaders, writeEvent(&ev))
	got, err := abi.DecodeAnswer(out, abi.DefaultLimits)
	if err != nil {
		t.Fatalf("DecodeAnswer: %v", err)
	}
	want := abi.Answer{
		Verdict: abi.Reject,
		Reply:   abi.Reply{Code: 550, Enhanced: "5.7.1", Text: "no alice@example.org"},
		Actions: []abi.Action{{Kind: abi.AddHeader, Name: "X-Seen", Value: "hello"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer = %+v\nwant %+v", got, want)
	}
}

func TestHookContinueWithoutActionsIsEmpty(t *testing.T) {
	useHost(t, newFakeHost())
	usePlugin(t, Plugin{Connect: func(*Message) Verdict { return Continue() }})
	ev := abi.Event{Hook: abi.HookConnect}
	if out := runHook(abi.HookConnect, writeEvent(&ev)); out != nil {
		t.Errorf("answer = %x, want none", out)
	}
	// A hook without a handler also answers "continue".
	ev.Hook = abi.HookHelo
	if out := runHook(abi.HookHelo, writeEvent(&ev)); out != nil {
		t.Errorf("unhandled hook answered %x", out)
	}
}

// TestHandlerPanicTraps checks the documented failure path: the panic is
// logged through the host and raised again, so the guest call traps.
func TestHandlerPanicTraps(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	usePlugin(t, Plugin{Message: func(*Message) Verdict { panic("boom") }})
	ev := abi.Event{Hook: abi.HookMessage}
	n := writeEvent(&ev)
	r := catchPanic(func() { runHook(abi.HookMessage, n) })
	if r == nil || !strings.Contains(fmt.Sprint(r), "panic in message: boom") {
		t.Fatalf("recovered %v, want a re-raised panic naming the hook", r)
	}
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "boom") || !strings.Contains(f.logs[0], "goroutine") {
		t.Errorf("panic not logged with a stack: %q", f.logs)
	}
}

func TestMalformedEventTraps(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	usePlugin(t, Plugin{Headers: func(*Message) Verdict { return Continue() }})
	n := int32(copy(exchangeBuffer(2), []byte{12, 40})) // a header field claiming 40 bytes
	r := catchPanic(func() { runHook(abi.HookHeaders, n) })
	if r == nil || !strings.Contains(fmt.Sprint(r), "decoding the headers event") {
		t.Fatalf("recovered %v, want a decoding error", r)
	}
}

func catchPanic(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

func TestExchangeBufferGrowsAndIsReused(t *testing.T) {
	a := exchangeBuffer(10)
	b := exchangeBuffer(int32(len(a)))
	if &a[0] != &b[0] {
		t.Error("a request that fits reallocated the buffer")
	}
	c := exchangeBuffer(int32(len(a) + 1))
	if len(c) < len(a)+1 {
		t.Errorf("grown buffer has %d bytes", len(c))
	}
	if len(exchangeBuffer(-5)) == 0 {
		t.Error("a non-positive size returned an empty buffer")
	}
}

// BenchmarkHook20Headers measures the guest-side work of one hook call on a
// 20-header event, natively: decode, handler with two lookups and an action,
// encode. The Wasm cost is measured through the host in the builtin tests.
func BenchmarkHook20Headers(b *testing.B) {
	useHost(b, newFakeHost())
	usePlugin(b, Plugin{Headers: func(m *Message) Verdict {
		if m.Headers().Get("X-Spam-Flag") == "YES" {
			return Reject(550, "5.7.1", "spam")
		}
		m.AddHeader("X-Checked", m.Headers().Get("Message-ID"))
		return Continue()
	}})
	ev := benchEvent()
	n := writeEvent(&ev)
	b.ReportAllocs()
	for b.Loop() {
		if runHook(abi.HookHeaders, n) == nil {
			b.Fatal("no answer")
		}
	}
}

func benchEvent() abi.Event {
	ev := sampleEvent()
	ev.Hook = abi.HookHeaders
	ev.Headers = nil
	for i := range 18 {
		ev.Headers = append(ev.Headers, abi.Header{Name: fmt.Sprintf("X-Header-%d", i), Value: strings.Repeat("v", 80)})
	}
	ev.Headers = append(ev.Headers, abi.Header{Name: "Message-ID", Value: "<1@example.org>"}, abi.Header{Name: "Subject", Value: "hi"})
	return ev
}
