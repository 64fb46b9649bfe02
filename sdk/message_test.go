package sdk

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func sampleEvent() abi.Event {
	return abi.Event{
		Hook: abi.HookRcpt, Now: 1, ClientHost: "mx.example.org", ClientAddr: "192.0.2.7",
		ClientPort: 50123, Family: "inet", Helo: "mx.example.org", QueueID: "4XyZ",
		From: "alice@example.org", FromArgs: []string{"SIZE=1234"},
		Rcpts: []abi.Recipient{{Addr: "bob@example.net"}, {Addr: "carol@example.net", Args: []string{"NOTIFY=NEVER"}}},
		Headers: []abi.Header{
			{Name: "Received", Value: "from a"},
			{Name: "Subject", Value: "hello"},
			{Name: "received", Value: "from b"},
			{Name: "X-Empty", Value: ""},
		},
	}
}

func TestMessageAccessors(t *testing.T) {
	m := messageFor(t, sampleEvent())
	if m.Hook() != abi.HookRcpt || m.Helo() != "mx.example.org" || m.QueueID() != "4XyZ" || m.From() != "alice@example.org" {
		t.Errorf("envelope accessors wrong: %+v", m.ev)
	}
	if want := (Client{Host: "mx.example.org", Addr: "192.0.2.7", Port: 50123, Family: "inet"}); m.Client() != want {
		t.Errorf("Client = %+v", m.Client())
	}
	if !reflect.DeepEqual(m.FromArgs(), []string{"SIZE=1234"}) || len(m.Rcpts()) != 2 {
		t.Errorf("FromArgs/Rcpts wrong")
	}
	if r := m.Rcpt(); r.Addr != "carol@example.net" || r.Args[0] != "NOTIFY=NEVER" {
		t.Errorf("Rcpt = %+v, want the last recipient", r)
	}
	if r := messageFor(t, abi.Event{}).Rcpt(); r.Addr != "" {
		t.Errorf("Rcpt without recipients = %+v", r)
	}
}

func TestHeaders(t *testing.T) {
	h := messageFor(t, sampleEvent()).Headers()
	if h.Len() != 4 || len(h.All()) != 4 {
		t.Errorf("Len = %d", h.Len())
	}
	if got := h.Get("RECEIVED"); got != "from a" {
		t.Errorf("Get is not case-insensitive or not the first: %q", got)
	}
	if got := h.Values("Received"); !reflect.DeepEqual(got, []string{"from a", "from b"}) {
		t.Errorf("Values = %q", got)
	}
	if v, ok := h.Lookup("x-empty"); !ok || v != "" {
		t.Errorf("Lookup of an empty header = %q, %v", v, ok)
	}
	if _, ok := h.Lookup("Missing"); ok {
		t.Error("Lookup found a missing header")
	}
	if h.Values("Missing") != nil {
		t.Error("Values of a missing header is not nil")
	}
}

func TestMessageHostFunctions(t *testing.T) {
	f := newFakeHost()
	f.clock = time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC).UnixNano()
	long := strings.Repeat("v", 1000) // larger than the initial scratch buffer
	f.macros["j"] = "mx.local"
	f.macros["{long}"] = long
	useHost(t, f)
	ev := sampleEvent()
	m := messageFor(t, ev)

	if got := m.Now(); !got.Equal(time.Unix(0, ev.Now)) {
		t.Errorf("Now = %v, want the event's time", got)
	}
	ev.Now = 0
	if got := messageFor(t, ev).Now(); !got.Equal(time.Unix(0, f.clock)) {
		t.Errorf("Now of an event without a time = %v, want the host clock", got)
	}
	if v, ok := m.Macro("j"); !ok || v != "mx.local" {
		t.Errorf("Macro(j) = %q, %v", v, ok)
	}
	if v, ok := m.Macro("{long}"); !ok || v != long {
		t.Errorf("Macro of a value larger than the buffer: got %d bytes, %v", len(v), ok)
	}
	if _, ok := m.Macro("{nope}"); ok {
		t.Error("undefined macro reported present")
	}
	m.Logf(LogInfo, "seen %d", 3)
	if len(f.logs) != 1 || f.logs[0] != "seen 3" {
		t.Errorf("logs = %q", f.logs)
	}
}

func TestMessageStampIsFetchedOncePerCall(t *testing.T) {
	f := newFakeHost()
	want := abi.Stamp{ID: "abc", FirstSeen: 17, HeaderName: "X-Wasmilter-Stamp", HeaderValue: "abc; t=17",
		State: abi.StampForged, Invalid: []int{2}}
	f.stampData = abi.AppendStamp(nil, &want)
	useHost(t, f)
	m := messageFor(t, sampleEvent())
	for range 3 {
		got, ok := m.Stamp()
		if !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("Stamp = %+v, %v; want %+v", got, ok, want)
		}
	}
	if f.calls["stamp"] != 1 {
		t.Errorf("stamp host function called %d times, want 1", f.calls["stamp"])
	}
}

func TestMessageStampAbsentOrMalformed(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	if _, ok := messageFor(t, abi.Event{}).Stamp(); ok {
		t.Error("absent stamp reported present")
	}
	f.stampData = []byte{5, 9} // field 5 claiming 9 bytes that are not there
	if _, ok := messageFor(t, abi.Event{}).Stamp(); ok {
		t.Error("malformed stamp reported present")
	}
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "decoding the stamp") {
		t.Errorf("malformed stamp not logged: %q", f.logs)
	}
}

func TestMessageActions(t *testing.T) {
	m := messageFor(t, abi.Event{Hook: abi.HookMessage})
	m.AddHeader("X-A", "1")
	m.InsertHeader(0, "X-B", "2")
	m.ChangeHeader("Subject", 1, "new")
	m.DeleteHeader("X-Old", 2)
	m.Quarantine("suspicious")
	m.ChangeFrom("bounce@example.org", "SIZE=10")
	m.AddRcpt("archive@example.org")
	m.DelRcpt("bob@example.net")
	want := []abi.Action{
		{Kind: abi.AddHeader, Name: "X-A", Value: "1"},
		{Kind: abi.InsertHeader, Index: 0, Name: "X-B", Value: "2"},
		{Kind: abi.ChangeHeader, Name: "Subject", Index: 1, Value: "new"},
		{Kind: abi.DeleteHeader, Name: "X-Old", Index: 2},
		{Kind: abi.Quarantine, Value: "suspicious"},
		{Kind: abi.ChangeFrom, Value: "bounce@example.org", Args: []string{"SIZE=10"}},
		{Kind: abi.AddRcpt, Value: "archive@example.org"},
		{Kind: abi.DelRcpt, Value: "bob@example.net"},
	}
	if !reflect.DeepEqual(m.Actions(), want) {
		t.Fatalf("Actions =\n%+v\nwant\n%+v", m.Actions(), want)
	}
	ans := m.answer(Continue())
	if err := abi.Validate(&ans, abi.HookMessage, abi.DefaultLimits); err != nil {
		t.Errorf("the host would refuse these actions: %v", err)
	}
}

func TestDelayActions(t *testing.T) {
	m := messageFor(t, abi.Event{Hook: abi.HookDelay})
	m.Notify("still trying\nsorry")
	m.Expire("")
	ans := m.answer(Continue())
	if err := abi.Validate(&ans, abi.HookDelay, abi.DefaultLimits); err != nil {
		t.Errorf("the host would refuse delay actions: %v", err)
	}
	if ans.Actions[0].Kind != abi.Notify || ans.Actions[1].Kind != abi.Expire {
		t.Errorf("actions = %+v", ans.Actions)
	}
}
