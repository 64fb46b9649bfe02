package builtin_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// These tests load the committed builtins.wasm as delaynotify through the real plugin
// host and call its delay hook the way the retry sweeper will: the host's
// (fixed) clock, the ledger record through the record host function, the
// original envelope and header in the event.

// testNow is the shared host's clock.
var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func loadDelayNotify(tb testing.TB, config ...abi.ConfigEntry) (*plugins.Chain, error) {
	tb.Helper()
	return loadBuiltin(tb, "delaynotify", config...)
}

func entry(key string, values ...string) abi.ConfigEntry {
	return abi.ConfigEntry{Key: key, Values: values}
}

// deferredFor is a record of a message first seen age before testNow, with
// notices delay notices already sent.
func deferredFor(age time.Duration, notices int) *abi.Record {
	first := testNow.Add(-age)
	return &abi.Record{ID: "k3j2h1", FirstSeen: first.Unix(), LastSeen: testNow.Add(-time.Minute).Unix(),
		Attempts: 3, State: "deferred", Notices: notices,
		LastReason: abi.Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted: please try again later"}}
}

func heldFor(age time.Duration, notices int) *abi.Record {
	r := deferredFor(age, notices)
	r.State = "held"
	return r
}

// delayEvent is the envelope and header the sweeper hands over.
func delayEvent(from string, headers ...abi.Header) *abi.Event {
	return &abi.Event{From: from, Rcpts: []abi.Recipient{{Addr: "bob@example.net"}, {Addr: "carol@example.net"}},
		Headers: append([]abi.Header{{Name: "Subject", Value: "Quarterly report"},
			{Name: "Message-ID", Value: "<1@example.org>"}}, headers...)}
}

// runDelay calls the delay hook once and returns its actions.
func runDelay(t *testing.T, chain *plugins.Chain, ev *abi.Event, env wasmtest.Env) []abi.Action {
	t.Helper()
	res := chain.Run(context.Background(), abi.HookDelay, ev, env)
	if len(res.Failures) > 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	if res.Verdict != abi.Continue {
		t.Fatalf("verdict %v, want continue", res.Verdict)
	}
	return res.Actions
}

func TestDelayNotifyPolicy(t *testing.T) {
	chain, err := loadDelayNotify(t, entry("local_domains", "example.org", ".corp.example"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	auth := map[string]string{"{auth_authen}": "mallory"}
	const local = "alice@example.org"
	tests := []struct {
		name   string
		ev     *abi.Event
		env    wasmtest.Env
		want   abi.ActionKind // 0: no action
		withIn []string       // the action's text contains these
	}{
		{"not yet due", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(29*time.Minute, 0)}, 0, nil},
		{"step 0 due", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(31*time.Minute, 0)}, abi.Notify,
			[]string{"not lost", "451 4.7.1 Greylisted: please try again later",
				"First seen:  Sun, 22 Nov 2026 11:29:00 +0000 (31 minutes ago)", "until Fri, 27 Nov 2026 11:29:00 +0000.",
				"<bob@example.net>, <carol@example.net>", "Attempts:    3"}},
		{"step 0 sent, step 1 not due", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(2*time.Hour, 1)}, 0, nil},
		{"step 1 due", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(4*time.Hour+10*time.Minute, 1)}, abi.Notify,
			[]string{"4 hours 10 minutes ago"}},
		{"step 2 due", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(25*time.Hour, 2)}, abi.Notify,
			[]string{"1 day 1 hour ago"}},
		{"every step sent", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(4*24*time.Hour, 3)}, 0, nil},
		// One notice per call even when the sweeper was away through
		// several steps: the next one is sent on a later sweep.
		{"late sweep sends the pending step only", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(30*time.Hour, 0)}, abi.Notify,
			[]string{"1 day 6 hours ago"}},
		{"past max_age expires with a final text", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(5*24*time.Hour, 3)}, abi.Expire,
			[]string{"given up", "5 days ago", "451 4.7.1"}},
		{"held: notified in its own words", delayEvent(local), wasmtest.Env{MsgRecord: heldFor(time.Hour, 0)}, abi.Notify,
			[]string{"held for review", "1 hour ago"}},
		{"held past max_age: the admin decides, never expired", delayEvent(local), wasmtest.Env{MsgRecord: heldFor(6*24*time.Hour, 3)}, 0, nil},
		{"passed record: nobody waits", delayEvent(local), wasmtest.Env{MsgRecord: &abi.Record{ID: "x", State: "passed",
			FirstSeen: testNow.Add(-time.Hour).Unix()}}, 0, nil},
		{"no record", delayEvent(local), wasmtest.Env{}, 0, nil},
		{"null sender", delayEvent(""), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0), Macros: auth}, 0, nil},
		{"null sender past max_age expires without a notice", delayEvent(""), wasmtest.Env{MsgRecord: deferredFor(6*24*time.Hour, 0)},
			abi.Expire, nil},
		{"MAILER-DAEMON sender", delayEvent("MAILER-DAEMON@example.org"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"non-local sender", delayEvent("someone@elsewhere.example"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"non-local sender past max_age expires without a notice", delayEvent("someone@elsewhere.example"),
			wasmtest.Env{MsgRecord: deferredFor(6*24*time.Hour, 0)}, abi.Expire, nil},
		{"look-alike domain is not local", delayEvent("a@notexample.org"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"local domain in another case", delayEvent("Alice@EXAMPLE.org"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, abi.Notify, nil},
		{"subdomain of a .domain entry", delayEvent("a@mx.corp.example"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, abi.Notify, nil},
		{"a .domain entry is not the domain itself", delayEvent("a@corp.example"), wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"authenticated sender from anywhere", delayEvent("someone@elsewhere.example"),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0), Macros: auth}, abi.Notify, nil},
		{"delivery report (properties)", delayEvent(local),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0), MsgProps: &abi.Properties{IsDeliveryReport: true,
				ContentType: "multipart/report"}}, 0, nil},
		{"delivery report (header)", delayEvent(local,
			abi.Header{Name: "Content-Type", Value: "Multipart/Report; report-type=delivery-status;\r\n\tboundary=x"}),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"Auto-Submitted (properties)", delayEvent(local),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0), MsgProps: &abi.Properties{AutoSubmitted: "auto-generated"}}, 0, nil},
		{"Auto-Submitted (header)", delayEvent(local, abi.Header{Name: "auto-submitted", Value: "auto-replied (vacation)"}),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, 0, nil},
		{"Auto-Submitted: no is a person", delayEvent(local, abi.Header{Name: "Auto-Submitted", Value: "no"}),
			wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)}, abi.Notify, nil},
		{"record from a clock ahead of ours", delayEvent(local), wasmtest.Env{MsgRecord: deferredFor(-time.Hour, 0)}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts := runDelay(t, chain, tt.ev, tt.env)
			if tt.want == 0 {
				if len(acts) != 0 {
					t.Fatalf("actions %+v, want none", acts)
				}
				return
			}
			if len(acts) != 1 || acts[0].Kind != tt.want {
				t.Fatalf("actions %+v, want one %v", acts, tt.want)
			}
			text := acts[0].Value
			if tt.withIn == nil && tt.want == abi.Expire && text != "" {
				t.Errorf("expire text %q, want none: this sender is not told", text)
			}
			for _, w := range tt.withIn {
				if !strings.Contains(text, w) {
					t.Errorf("text does not contain %q:\n%s", w, text)
				}
			}
			if strings.ContainsAny(text, "{}") {
				t.Errorf("text has an unfilled placeholder:\n%s", text)
			}
		})
	}
}

func TestDelayNotifyCustomText(t *testing.T) {
	chain, err := loadDelayNotify(t,
		entry("local_domains", "example.org"),
		entry("notify_after", "1h", "1d12h"),
		entry("max_age", "3d"),
		entry("text.delayed", "{sender}: \"{subject}\" to {recipients}, {attempts} tries, {age} old, last {last_seen}, "+
			"first {first_seen}, until {retry_until}: {reason} {not a placeholder} {}"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// A folded Subject with a control character: both must be cleaned, or
	// the host would refuse the whole answer.
	ev := delayEvent("alice@example.org")
	ev.Headers[0].Value = "Quarterly\r\n report\x01 "
	acts := runDelay(t, chain, ev, wasmtest.Env{MsgRecord: deferredFor(36*time.Hour, 1)})
	want := []abi.Action{{Kind: abi.Notify, Value: "alice@example.org: \"Quarterly report\" to <bob@example.net>, <carol@example.net>, " +
		"3 tries, 1 day 12 hours old, last Sun, 22 Nov 2026 11:59:00 +0000, first Sat, 21 Nov 2026 00:00:00 +0000, " +
		"until Tue, 24 Nov 2026 00:00:00 +0000: 451 4.7.1 Greylisted: please try again later {not a placeholder} {}"}}
	if !reflect.DeepEqual(acts, want) {
		t.Errorf("got  %+v\nwant %+v", acts, want)
	}
	// The decoded Subject from the host wins over the raw field.
	acts = runDelay(t, chain, delayEvent("alice@example.org"), wasmtest.Env{MsgRecord: deferredFor(36*time.Hour, 1),
		MsgProps: &abi.Properties{Subject: "Überweisung"}})
	if len(acts) != 1 || !strings.Contains(acts[0].Value, "\"Überweisung\"") {
		t.Errorf("actions %+v, want the decoded subject", acts)
	}
	// Before the 1h step nothing; max_age 3d expires.
	if acts := runDelay(t, chain, delayEvent("alice@example.org"), wasmtest.Env{MsgRecord: deferredFor(59*time.Minute, 0)}); len(acts) != 0 {
		t.Errorf("at 59m: %+v, want nothing", acts)
	}
	acts = runDelay(t, chain, delayEvent("alice@example.org"), wasmtest.Env{MsgRecord: deferredFor(3*24*time.Hour, 2)})
	if len(acts) != 1 || acts[0].Kind != abi.Expire || acts[0].Value == "" {
		t.Errorf("at max_age: %+v, want expire with the default final text", acts)
	}
}

func TestDelayNotifyManyRecipientsStayBounded(t *testing.T) {
	chain, err := loadDelayNotify(t, entry("local_domains", "example.org"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ev := delayEvent("alice@example.org")
	ev.Rcpts = nil
	for range 500 {
		ev.Rcpts = append(ev.Rcpts, abi.Recipient{Addr: strings.Repeat("r", 60) + "@example.net"})
	}
	acts := runDelay(t, chain, ev, wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0)})
	if len(acts) != 1 || !strings.Contains(acts[0].Value, " and 490 more") || len(acts[0].Value) > 4096 {
		t.Errorf("notice for 500 recipients: %d bytes, want 10 named and the rest counted", len(acts[0].Value))
	}
}

func TestDelayNotifyAuthenticatedOff(t *testing.T) {
	chain, err := loadDelayNotify(t, entry("notify_authenticated", "false"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	env := wasmtest.Env{MsgRecord: deferredFor(time.Hour, 0), Macros: map[string]string{"{auth_authen}": "alice"}}
	if acts := runDelay(t, chain, delayEvent("alice@example.org"), env); len(acts) != 0 {
		t.Errorf("notify_authenticated = false, no local_domains: %+v, want nobody told", acts)
	}
}

func TestDelayNotifyAsksOnlyForTheDelayHook(t *testing.T) {
	chain, err := loadDelayNotify(t)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := abi.HookSet(0).With(abi.HookDelay); chain.Hooks() != want {
		t.Errorf("hooks = %v, want %v", chain.Hooks(), want)
	}
}

func TestDelayNotifyRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		config []abi.ConfigEntry
		want   []string // the error contains each
	}{
		{"bad step", []abi.ConfigEntry{entry("notify_after", "30m", "4 hours")}, []string{`"notify_after"`, "step 2", `"4 hours"`}},
		{"steps not increasing", []abi.ConfigEntry{entry("notify_after", "4h", "30m")}, []string{`"notify_after"`, "must increase"}},
		{"equal steps", []abi.ConfigEntry{entry("notify_after", "4h", "4h")}, []string{`"notify_after"`, "must increase"}},
		{"zero step", []abi.ConfigEntry{entry("notify_after", "0s")}, []string{`"notify_after"`, "positive"}},
		{"step past max_age", []abi.ConfigEntry{entry("notify_after", "1h", "6d")}, []string{`"notify_after"`, "step 2", "max_age (5d)"}},
		{"bad max_age", []abi.ConfigEntry{entry("max_age", "5 days")}, []string{`"max_age"`, `"5 days"`}},
		{"negative max_age", []abi.ConfigEntry{entry("max_age", "-1h")}, []string{`"max_age"`, "positive"}},
		{"address as local domain", []abi.ConfigEntry{entry("local_domains", "postmaster@example.org")}, []string{`"local_domains"`, "not a domain"}},
		{"bad boolean", []abi.ConfigEntry{entry("notify_authenticated", "yes")}, []string{`"notify_authenticated"`}},
		{"unknown placeholder", []abi.ConfigEntry{entry("text.delayed", "Delayed for {agee}")}, []string{`"text.delayed"`, "{agee}", "{age}"}},
		{"blank notice", []abi.ConfigEntry{entry("text.held", " ")}, []string{`"text.held"`, "blank"}},
		{"control character", []abi.ConfigEntry{entry("text.expired", "gone\x07")}, []string{`"text.expired"`, "control character"}},
		{"every problem at once", []abi.ConfigEntry{entry("max_age", "x"), entry("notify_after", "y")}, []string{`"max_age"`, `"notify_after"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadDelayNotify(t, tt.config...)
			if err == nil {
				t.Fatal("the plugin started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// An empty final text is a choice, not a mistake: expire silently.
	chain, err := loadDelayNotify(t, entry("local_domains", "example.org"), entry("text.expired", ""))
	if err != nil {
		t.Fatalf("text.expired = \"\": %v", err)
	}
	acts := runDelay(t, chain, delayEvent("alice@example.org"), wasmtest.Env{MsgRecord: deferredFor(6*24*time.Hour, 3)})
	if want := []abi.Action{{Kind: abi.Expire}}; !reflect.DeepEqual(acts, want) {
		t.Errorf("got %+v, want %+v", acts, want)
	}
}
