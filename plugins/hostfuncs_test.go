package plugins

import (
	"context"
	"encoding/hex"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// headerValues maps the names of add_header actions to their values.
func headerValues(t *testing.T, res Result) map[string]string {
	t.Helper()
	if len(res.Failures) != 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	out := map[string]string{}
	for _, a := range res.Actions {
		if a.Kind != abi.AddHeader {
			t.Fatalf("unexpected action %+v", a)
		}
		out[a.Name] = a.Value
	}
	return out
}

func TestHostFunctions(t *testing.T) {
	fixedNow := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	h, rec := newTestHost(t, func(c *HostConfig) { c.Clock = func() time.Time { return fixedNow } })
	config := []abi.ConfigEntry{{Key: "threshold", Values: []string{"5"}}, {Key: "allow.networks", Values: []string{"10.0.0.0/8", "192.0.2.0/24"}}}
	chain := NewChain(load(t, h, Spec{Name: "echo", Wasm: watFile(t, "echo"), Config: config}))

	stamp := abi.Stamp{ID: "3f2a9c", FirstSeen: 1714979289, HeaderName: "X-Wasmilter-Stamp",
		HeaderValue: "3f2a9c; t=1714979289", State: abi.StampForged, Invalid: []int{1, 3}}
	env := testEnv{macros: map[string]string{"i": "4ABC123DEF"}, stamp: &stamp}
	got := headerValues(t, chain.Run(context.Background(), abi.HookMessage, &abi.Event{}, env))

	if got["X-Now"] != strconv.FormatInt(fixedNow.UnixNano(), 10) {
		t.Errorf("X-Now = %q, want the host clock %d", got["X-Now"], fixedNow.UnixNano())
	}
	if got["X-Macro"] != "4ABC123DEF" {
		t.Errorf("X-Macro = %q", got["X-Macro"])
	}
	raw, err := hex.DecodeString(got["X-Stamp"])
	if err != nil {
		t.Fatalf("X-Stamp %q: %v", got["X-Stamp"], err)
	}
	if back, err := abi.DecodeStamp(raw); err != nil || !reflect.DeepEqual(back, stamp) {
		t.Errorf("stamp round trip: %+v, %v; want %+v", back, err, stamp)
	}
	raw, _ = hex.DecodeString(got["X-Config"])
	if back, err := abi.DecodeConfig(raw); err != nil || !reflect.DeepEqual(back, config) {
		t.Errorf("config seen by init: %+v, %v; want %+v", back, err, config)
	}

	// Without a message: macro and stamp are absent.
	got = headerValues(t, chain.Run(context.Background(), abi.HookMessage, &abi.Event{}, testEnv{}))
	if got["X-Macro"] != "absent" || got["X-Stamp"] != "absent" {
		t.Errorf("no env: macro %q stamp %q, want absent", got["X-Macro"], got["X-Stamp"])
	}
	got = headerValues(t, chain.Run(context.Background(), abi.HookMessage, &abi.Event{}, nil))
	if got["X-Macro"] != "absent" || got["X-Stamp"] != "absent" {
		t.Errorf("nil env: macro %q stamp %q, want absent", got["X-Macro"], got["X-Stamp"])
	}

	guest := func(source string) []recordedLog {
		return rec.find(func(l recordedLog) bool { return l.Attrs["plugin"] == "echo" && l.Attrs["source"] == source })
	}
	logs := guest("log")
	if len(logs) != 3 || logs[0].Message != "hello from echo" || logs[0].Level != slog.LevelInfo {
		t.Errorf("log host function lines: %+v", logs)
	}
	out := guest("stdout")
	if len(out) != 6 || out[0].Message != "echo stdout line" {
		t.Fatalf("stdout lines: %d %+v", len(out), out)
	}
	if long := out[1].Message; !strings.HasPrefix(long, strings.Repeat("x", maxGuestLine)) || !strings.HasSuffix(long, "[truncated]") || len(long) > maxGuestLine+32 {
		t.Errorf("a 3000-byte line was logged as %d bytes", len(long))
	}
}

func TestGuestLinesPerCallAreBounded(t *testing.T) {
	h, rec := newTestHost(t)
	chain := NewChain(load(t, h, Spec{Name: "echo", Wasm: watFile(t, "echo")}))
	for i := 0; i < 2; i++ { // the budget is per call
		chain.Run(context.Background(), abi.HookHelo, &abi.Event{}, nil)
	}
	spam := rec.find(func(l recordedLog) bool { return l.Attrs["source"] == "stdout" && l.Message == "spam" })
	if len(spam) != 2*maxGuestLinesPerCall {
		t.Errorf("%d spam lines logged, want %d per call", len(spam), maxGuestLinesPerCall)
	}
	notes := rec.find(func(l recordedLog) bool { return l.Message == "plugin log lines suppressed" })
	if len(notes) != 2 || notes[0].Attrs["lines"] != strconv.Itoa(100-maxGuestLinesPerCall) {
		t.Errorf("suppression notes: %+v", notes)
	}
}

func TestSanitizeLine(t *testing.T) {
	if got := sanitizeLine([]byte("ok\r")); got != "ok" {
		t.Errorf("%q", got)
	}
	if got := sanitizeLine([]byte("bad \xff byte")); got != "bad \uFFFD byte" {
		t.Errorf("%q", got)
	}
	long := strings.Repeat("é", maxGuestLine) // 2 bytes each: the cut falls inside a rune
	got := sanitizeLine([]byte(long))
	if !strings.HasSuffix(got, " …[truncated]") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("truncated line ends %q", got[len(got)-20:])
	}
}

func TestExchangeSize(t *testing.T) {
	for n, want := range map[int]uint32{1: 4096, 4096: 4096, 4097: 8192, 100_000: 131072} {
		if got := exchangeSize(n); got != want {
			t.Errorf("exchangeSize(%d) = %d, want %d", n, got, want)
		}
	}
}
