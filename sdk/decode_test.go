package sdk

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func decodeCorpus() []abi.Event {
	long := make([]byte, 300) // nested lengths above 127 take two bytes
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	return []abi.Event{
		{},
		{Hook: abi.HookConnect, Now: 1_700_000_000_123_456_789, ClientHost: "[192.0.2.1]", ClientAddr: "192.0.2.1", ClientPort: 25, Family: "inet"},
		sampleEvent(),
		benchEvent(),
		{Hook: abi.HookMessage, Headers: []abi.Header{{Name: "X-Long", Value: string(long)}, {Name: "X-Empty"}},
			Rcpts: []abi.Recipient{{Addr: string(long), Args: []string{"A=1", "B=2"}}}, FromArgs: []string{"BODY=8BITMIME", "SIZE=1"}},
	}
}

func TestDecodeMatchesABI(t *testing.T) {
	for i, ev := range decodeCorpus() {
		enc := abi.AppendEvent(nil, &ev)
		got, err := decodeEvent(enc)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want, _ := abi.DecodeEvent(enc)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestDecodedStringsOutliveTheInput(t *testing.T) {
	ev := sampleEvent()
	enc := abi.AppendEvent(nil, &ev)
	m, err := newMessage(enc)
	if err != nil {
		t.Fatal(err)
	}
	subject := m.Headers().Get("Subject")
	for i := range enc {
		enc[i] = 0 // the host writes the next event over the buffer
	}
	if subject != "hello" || m.From() != "alice@example.org" || m.Rcpt().Args[0] != "NOTIFY=NEVER" {
		t.Errorf("strings handed out changed with the input buffer: %q %q %q", subject, m.From(), m.Rcpt().Args)
	}
}

func TestHeadersRefuseUseAfterTheCall(t *testing.T) {
	m := messageFor(t, sampleEvent())
	h := m.Headers()
	if h.Get("Subject") != "hello" {
		t.Fatal("the view does not work during the call")
	}
	currentCall++ // what runHook does when the call returns
	if r := catchPanic(func() { h.Get("Subject") }); r == nil || !strings.Contains(fmt.Sprint(r), "after the hook call") {
		t.Errorf("a stale view answered; recovered %v", r)
	}
	var zero Headers
	if zero.Len() != 0 || zero.Get("x") != "" {
		t.Error("the zero Headers is not empty")
	}
}

func TestDecodeEventMalformed(t *testing.T) {
	for _, in := range [][]byte{
		{tagHeader},              // no length
		{tagHeader, 5, 1},        // length past the end
		{tagHook, 2, 0x80, 0x80}, // unterminated varint
		{tagHook, 2, 1, 1},       // two varints in an integer field
		{tagRcpt, 3, 1, 'a', 9},  // 9 arguments in 0 bytes
		{tagHeader, 2, 5, 'a'},   // name longer than the field
		{0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}, // length over 64 bits
	} {
		if _, err := decodeEvent(in); err == nil {
			t.Errorf("%x: no error", in)
		}
		if _, err := abi.DecodeEvent(in); err == nil {
			t.Errorf("%x: abi.DecodeEvent has no error either: fix the test input", in)
		}
	}
}

// FuzzDecode holds decodeEvent to abi.DecodeEvent on any input: both
// fail, or both succeed with equal events. Run it with
// go test -fuzz FuzzDecode ./sdk.
func FuzzDecode(f *testing.F) {
	for _, ev := range decodeCorpus() {
		f.Add(abi.AppendEvent(nil, &ev))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, gotErr := decodeEvent(in)
		want, wantErr := abi.DecodeEvent(in)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%x: error %v, abi says %v", in, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%x:\n got %+v\nwant %+v", in, got, want)
		}
	})
}

// A hook call decodes into the reused Message; an envelope the previous
// call also had (every hook of a message repeats it) allocates nothing: in a
// Go guest each allocation costs microseconds, and garbage brings the
// collector, whose cycles are far dearer in Wasm.
func TestReusedMessageAllocatesNothingForAnUnchangedEnvelope(t *testing.T) {
	ev := sampleEvent()
	ev.Rcpts = ev.Rcpts[:1] // ESMTP arguments of a recipient are copied each time
	enc := abi.AppendEvent(nil, &ev)
	if _, err := reuseMessage(enc); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := reuseMessage(enc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per decode of an unchanged event, want 0", allocs)
	}
}

// Strings a handler kept from one call are unchanged by the next call,
// whose envelope differs.
func TestKeptStringsSurviveTheNextCall(t *testing.T) {
	ev := sampleEvent()
	m, err := reuseMessage(abi.AppendEvent(nil, &ev))
	if err != nil {
		t.Fatal(err)
	}
	from, rcpts, qid, args := m.From(), m.Rcpts(), m.QueueID(), m.FromArgs()
	next := sampleEvent()
	next.FromArgs = []string{"BODY=8BITMIME"}
	next.From, next.QueueID = "mallory@example.net", "OTHER"
	next.Rcpts = []abi.Recipient{{Addr: "eve@example.net"}}
	m, err = reuseMessage(abi.AppendEvent(nil, &next))
	if err != nil {
		t.Fatal(err)
	}
	if from != ev.From || qid != ev.QueueID || !reflect.DeepEqual(rcpts, ev.Rcpts) || !reflect.DeepEqual(args, ev.FromArgs) {
		t.Errorf("kept values changed: %q %q %q %q", from, qid, rcpts, args)
	}
	if m.From() != next.From || m.Rcpt().Addr != "eve@example.net" {
		t.Errorf("second call decoded %q %q", m.From(), m.Rcpt().Addr)
	}
}

// A handler that wrote into the recipient list it was given does not see
// its writes come back in the next call's list.
func TestRecipientListWrittenByAHandlerIsNotHandedOutAgain(t *testing.T) {
	ev := sampleEvent()
	enc := abi.AppendEvent(nil, &ev)
	m, err := reuseMessage(enc)
	if err != nil {
		t.Fatal(err)
	}
	m.Rcpts()[0].Addr = "written@example.org"
	m, err = reuseMessage(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Rcpts(), ev.Rcpts) {
		t.Errorf("recipients %q, want %q", m.Rcpts(), ev.Rcpts)
	}
}
