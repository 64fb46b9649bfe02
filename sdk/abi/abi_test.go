package abi

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleEvent() *Event {
	e := &Event{
		Hook: HookMessage, Now: 1_700_000_000_123, ClientHost: "mx.example.org", ClientAddr: "192.0.2.7",
		ClientPort: 40123, Family: "inet", Helo: "mx.example.org", QueueID: "4XyZ12", From: "alice@example.org",
		FromArgs: []string{"SIZE=1234", "BODY=8BITMIME"},
		Rcpts:    []Recipient{{Addr: "bob@example.net"}, {Addr: "carol@example.net", Args: []string{"NOTIFY=NEVER"}}},
	}
	for i := 0; i < 20; i++ {
		e.Headers = append(e.Headers, Header{Name: "X-H" + itoa(i), Value: strings.Repeat("v", i*10)})
	}
	return e
}

func TestEventRoundTrip(t *testing.T) {
	want := sampleEvent()
	got, err := DecodeEvent(AppendEvent(nil, want))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, *want)
	}
}

func TestNestedLengthPrefixSizes(t *testing.T) {
	// Payloads below 128 bytes take a 1-byte prefix, up to 16383 two bytes, above that three:
	// appendNested must shift correctly in every case.
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 100_000} {
		e := &Event{Headers: []Header{{Name: "N", Value: strings.Repeat("x", n)}}}
		got, err := DecodeEvent(AppendEvent(nil, e))
		if err != nil {
			t.Fatalf("value of %d bytes: %v", n, err)
		}
		if len(got.Headers) != 1 || len(got.Headers[0].Value) != n {
			t.Fatalf("value of %d bytes decoded as %+v", n, got.Headers)
		}
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	want := Answer{
		Verdict: TempFail,
		Reply:   Reply{Code: 451, Enhanced: "4.7.1", Text: "greylisted, try again later"},
		Actions: []Action{
			{Kind: AddHeader, Name: "X-A", Value: "1"},
			{Kind: InsertHeader, Index: 0, Name: "X-B", Value: "2"},
			{Kind: ChangeHeader, Index: 2, Name: "Subject", Value: "new"},
			{Kind: AddRcpt, Value: "x@example.org", Args: []string{"NOTIFY=NEVER"}},
		},
	}
	got, err := DecodeAnswer(AppendAnswer(nil, &want), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeAnswerLimits(t *testing.T) {
	var a Answer
	for i := 0; i < 5; i++ {
		a.Actions = append(a.Actions, Action{Kind: AddHeader, Name: "X", Value: "y"})
	}
	l := DefaultLimits
	l.MaxActions = 4
	if _, err := DecodeAnswer(AppendAnswer(nil, &a), l); !errors.Is(err, ErrMalformed) {
		t.Fatalf("5 actions with a limit of 4: err = %v, want ErrMalformed", err)
	}
	l = DefaultLimits
	l.MaxAnswerBytes = 10
	if _, err := DecodeAnswer(AppendAnswer(nil, &a), l); err == nil {
		t.Fatal("oversized answer accepted")
	}
}

func TestDecodeRejectsTruncation(t *testing.T) {
	full := AppendAnswer(nil, &Answer{Verdict: Reject, Reply: Reply{Code: 550, Text: "no"},
		Actions: []Action{{Kind: AddHeader, Name: "X", Value: "y"}}})
	for i := 1; i < len(full); i++ {
		if _, err := DecodeAnswer(full[:i], DefaultLimits); err == nil {
			// A cut exactly at a field boundary is a valid shorter answer; anything else must fail.
			if !fieldBoundary(full, i) {
				t.Fatalf("truncated at %d of %d decoded without error", i, len(full))
			}
		}
	}
}

func fieldBoundary(p []byte, n int) bool {
	r := reader{p: p}
	for off := 0; off < n; {
		if _, _, err := r.field(); err != nil {
			return false
		}
		off = len(p) - len(r.p)
		if off == n {
			return true
		}
	}
	return n == 0
}

func TestStampAndConfigAndInitRoundTrip(t *testing.T) {
	st := Stamp{ID: "abc", FirstSeen: 1700000000, HeaderName: "X-Wasmilter-Stamp", HeaderValue: "v=1; id=abc",
		State: StampForged, Invalid: []int{1, 3}}
	gotSt, err := DecodeStamp(AppendStamp(nil, &st))
	if err != nil || !reflect.DeepEqual(gotSt, st) {
		t.Fatalf("stamp: %+v, %v", gotSt, err)
	}
	cfg := []ConfigEntry{{Key: "greeting", Values: []string{"hi"}}, {Key: "steps", Values: []string{"30m", "4h"}}, {Key: "empty"}}
	gotCfg, err := DecodeConfig(AppendConfig(nil, cfg))
	if err != nil || len(gotCfg) != 3 || gotCfg[1].Values[1] != "4h" || gotCfg[2].Key != "empty" {
		t.Fatalf("config: %+v, %v", gotCfg, err)
	}
	ia := InitAnswer{Error: "bad key", Features: FeatureBody, Hooks: HookSet(0).With(HookMessage)}
	gotIA, err := DecodeInitAnswer(AppendInitAnswer(nil, &ia))
	if err != nil || gotIA != ia {
		t.Fatalf("init answer: %+v, %v", gotIA, err)
	}
}

func TestValidate(t *testing.T) {
	ok := []struct {
		name string
		hook Hook
		a    Answer
	}{
		{"continue", HookConnect, Answer{}},
		{"tempfail with reply", HookHeaders, Answer{Verdict: TempFail, Reply: Reply{Code: 451, Enhanced: "4.7.1", Text: "later"}}},
		{"reject at rcpt", HookRcpt, Answer{Verdict: Reject, Reply: Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}}},
		{"headers at message", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X-Ok", Value: "a\tb"},
			{Kind: DeleteHeader, Name: "X-Old", Index: 1}}}},
		{"notify at delay", HookDelay, Answer{Actions: []Action{{Kind: Notify, Value: "line 1\r\nline 2"}}}},
	}
	for _, c := range ok {
		if err := Validate(&c.a, c.hook, DefaultLimits); err != nil {
			t.Errorf("%s: unexpected error %v", c.name, err)
		}
	}
	bad := []struct {
		name, want string
		hook       Hook
		a          Answer
	}{
		{"CRLF in header value", "CR or LF", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X", Value: "a\r\nBcc: evil@example.org"}}}},
		{"NUL in header value", "NUL", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X", Value: "a\x00"}}}},
		{"colon in header name", "not allowed", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X:Y", Value: "v"}}}},
		{"space in header name", "not allowed", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X Y", Value: "v"}}}},
		{"huge header value", "more than", HookMessage, Answer{Actions: []Action{{Kind: AddHeader, Name: "X", Value: strings.Repeat("a", 10<<20)}}}},
		{"5xx with tempfail", "does not fit", HookHeaders, Answer{Verdict: TempFail, Reply: Reply{Code: 550}}},
		{"4xx with reject", "does not fit", HookHeaders, Answer{Verdict: Reject, Reply: Reply{Code: 451}}},
		{"reply with continue", "only with reject or tempfail", HookHeaders, Answer{Reply: Reply{Code: 250}}},
		{"enhanced class mismatch", "does not match", HookHeaders, Answer{Verdict: Reject, Reply: Reply{Code: 550, Enhanced: "4.7.1"}}},
		{"enhanced malformed", "class.subject.detail", HookHeaders, Answer{Verdict: Reject, Reply: Reply{Code: 550, Enhanced: "5.7"}}},
		{"CRLF in reply text", "CR or LF", HookHeaders, Answer{Verdict: Reject, Reply: Reply{Code: 550, Text: "no\r\n250 ok"}}},
		{"text without code", "needs a reply code", HookHeaders, Answer{Verdict: Reject, Reply: Reply{Text: "x"}}},
		{"header change at connect", "not connect", HookConnect, Answer{Actions: []Action{{Kind: AddHeader, Name: "X", Value: "v"}}}},
		{"notify at message", "only at the delay hook", HookMessage, Answer{Actions: []Action{{Kind: Notify, Value: "x"}}}},
		{"verdict at delay", "not verdict", HookDelay, Answer{Verdict: Reject}},
		{"change index 0", "starts at 1", HookMessage, Answer{Actions: []Action{{Kind: ChangeHeader, Name: "X", Value: "v"}}}},
		{"rcpt with brackets", "angle brackets", HookMessage, Answer{Actions: []Action{{Kind: AddRcpt, Value: "<x@y>"}}}},
		{"unknown action", "unknown action", HookMessage, Answer{Actions: []Action{{Kind: 99}}}},
	}
	for _, c := range bad {
		err := Validate(&c.a, c.hook, DefaultLimits)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalid containing %q", c.name, err, c.want)
		}
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(AppendAnswer(nil, &Answer{Verdict: Reject, Reply: Reply{Code: 550, Text: "x"},
		Actions: []Action{{Kind: AddRcpt, Value: "a@b", Args: []string{"X=1"}}}}))
	f.Add([]byte{tagAction, 0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := DecodeAnswer(p, DefaultLimits)
		if err != nil {
			return
		}
		_ = Validate(&a, HookMessage, DefaultLimits)
		// What decodes must re-encode to something that decodes to the same answer.
		b, err := DecodeAnswer(AppendAnswer(nil, &a), DefaultLimits)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("re-encoding changed the answer: %+v -> %+v (%v)", a, b, err)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(AppendEvent(nil, sampleEvent()))
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _ = DecodeEvent(p)
		_, _ = DecodeStamp(p)
		_, _ = DecodeConfig(p)
		_, _ = DecodeInitAnswer(p)
		_, _ = DecodeRecord(p)
		_, _ = DecodeProperties(p)
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := sampleEvent()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], e)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	p := AppendEvent(nil, sampleEvent())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRecordAndPropertiesRoundTrip(t *testing.T) {
	rec := Record{ID: "abc", FirstSeen: 1_800_000_000, LastSeen: 1_800_000_300, Attempts: 2, State: "deferred",
		LastReason: Reply{Code: 451, Enhanced: "4.7.1", Text: "greylisted"}, Notices: 1, LastNotice: 1_800_000_200}
	gotRec, err := DecodeRecord(AppendRecord(nil, &rec))
	if err != nil || gotRec != rec {
		t.Fatalf("record: %+v, %v", gotRec, err)
	}
	props := Properties{MessageID: "1@example.org", From: "a@example.org", FromName: "Ä", Sender: "s@example.org",
		ToCount: 2, CcCount: 1, Date: 1_800_000_000, Subject: "Grüße", ContentType: "multipart/report",
		ReceivedCount: 3, ListID: "<l.example.org>", AutoSubmitted: "auto-replied", Precedence: "bulk",
		IsDeliveryReport: true, HeaderCount: 20, HeaderBytes: 2048, Problems: []string{"Date: bad", "x"}}
	gotProps, err := DecodeProperties(AppendProperties(nil, &props))
	if err != nil || !reflect.DeepEqual(gotProps, props) {
		t.Fatalf("properties:\n got %+v\nwant %+v (%v)", gotProps, props, err)
	}
}
