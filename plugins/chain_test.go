package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func addHeader(name, value string) abi.Action {
	return abi.Action{Kind: abi.AddHeader, Name: name, Value: value}
}

func TestGoodPlugin(t *testing.T) {
	h, _ := newTestHost(t)
	chain := NewChain(load(t, h, Spec{Name: "good", Wasm: watFile(t, "good")}))
	ctx := context.Background()

	res := chain.Run(ctx, abi.HookHeaders, headerEvent(20), nil)
	if res.Verdict != abi.Continue || len(res.Actions) != 0 || len(res.Failures) != 0 {
		t.Fatalf("headers without X-Policy: %+v, want continue", res)
	}

	res = chain.Run(ctx, abi.HookHeaders, headerEvent(20, abi.Header{Name: "X-Policy", Value: "tempfail"}), nil)
	want := abi.Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted by policy, retry later"}
	if res.Verdict != abi.TempFail || res.Reply != want || res.DecidedBy != "good" {
		t.Fatalf("headers with X-Policy: tempfail: %+v, want tempfail %v by good", res, want)
	}

	// A header value that merely starts like the trigger must not trigger it.
	res = chain.Run(ctx, abi.HookHeaders, headerEvent(2, abi.Header{Name: "X-Policy", Value: "tempfailure"}), nil)
	if res.Verdict != abi.Continue {
		t.Fatalf("X-Policy: tempfailure: %+v, want continue", res)
	}

	res = chain.Run(ctx, abi.HookMessage, headerEvent(3), nil)
	if !reflect.DeepEqual(res.Actions, []abi.Action{addHeader("X-Good", "yes")}) || res.Verdict != abi.Continue {
		t.Fatalf("message: %+v, want one X-Good header", res)
	}

	// helo is exported but narrowed away by init; good.wat traps if called.
	res = chain.Run(ctx, abi.HookHelo, &abi.Event{Helo: "x"}, nil)
	if len(res.Failures) != 0 {
		t.Fatalf("helo was called: %+v", res.Failures)
	}
}

func TestChainOrderAndFirstTerminalWins(t *testing.T) {
	h, _ := newTestHost(t)
	a := load(t, h, Spec{Name: "a", Wasm: fixedWasm(t, abi.Answer{Actions: []abi.Action{addHeader("X-A", "1")}})})
	b := load(t, h, Spec{Name: "b", Wasm: fixedWasm(t, abi.Answer{
		Verdict: abi.Reject,
		Reply:   abi.Reply{Code: 554, Enhanced: "5.7.1", Text: "b says no"},
		Actions: []abi.Action{addHeader("X-B", "2")},
	})})
	c := load(t, h, Spec{Name: "c", Wasm: fixedWasm(t, abi.Answer{Verdict: abi.Accept, Actions: []abi.Action{addHeader("X-C", "3")}})})

	res := NewChain(a, b, c).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	if res.Verdict != abi.Reject || res.DecidedBy != "b" || res.Reply.Text != "b says no" {
		t.Fatalf("got %+v, want reject by b", res)
	}
	// The deciding plugin's actions count; c never ran.
	want := []abi.Action{addHeader("X-A", "1"), addHeader("X-B", "2")}
	if !reflect.DeepEqual(res.Actions, want) {
		t.Fatalf("actions %+v, want %+v", res.Actions, want)
	}
	if c.Stats().Calls != 0 {
		t.Fatalf("c was called after b's terminal verdict")
	}

	// Reordered: c decides first.
	res = NewChain(c, a, b).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	if res.Verdict != abi.Accept || res.DecidedBy != "c" || len(res.Actions) != 1 {
		t.Fatalf("reordered: %+v, want accept by c with its one action", res)
	}

	// All continue: every plugin's actions, in order, nobody decided.
	d := load(t, h, Spec{Name: "d", Wasm: fixedWasm(t, abi.Answer{Actions: []abi.Action{addHeader("X-D", "4")}})})
	res = NewChain(a, d).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	if res.Verdict != abi.Continue || res.DecidedBy != "" ||
		!reflect.DeepEqual(res.Actions, []abi.Action{addHeader("X-A", "1"), addHeader("X-D", "4")}) {
		t.Fatalf("all continue: %+v", res)
	}
}

func TestChainHooksAndFeatures(t *testing.T) {
	h, _ := newTestHost(t)
	good := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good")})
	loop := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop")})
	chain := NewChain(good, nil, loop)
	if got := chain.Hooks().String(); got != "connect,headers,message" {
		t.Errorf("chain hooks %s", got)
	}
	if len(chain.Plugins()) != 2 || chain.Features() != 0 {
		t.Errorf("plugins %d features %v", len(chain.Plugins()), chain.Features())
	}
	// A hook no plugin implements is not run at all.
	if res := chain.Run(context.Background(), abi.HookDelay, &abi.Event{}, nil); res.Verdict != abi.Continue || len(res.Failures) != 0 {
		t.Errorf("delay: %+v", res)
	}
	if res := NewChain().Run(context.Background(), abi.HookMessage, nil, nil); res.Verdict != abi.Continue {
		t.Errorf("empty chain: %+v", res)
	}
	if res := chain.Run(context.Background(), abi.Hook(99), nil, nil); res.Verdict != abi.Continue {
		t.Errorf("unknown hook: %+v", res)
	}
	if err := chain.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOnErrorPolicies(t *testing.T) {
	h, _ := newTestHost(t)
	after := load(t, h, Spec{Name: "after", Wasm: fixedWasm(t, abi.Answer{Actions: []abi.Action{addHeader("X-After", "1")}})})
	before := load(t, h, Spec{Name: "before", Wasm: fixedWasm(t, abi.Answer{Actions: []abi.Action{addHeader("X-Before", "1")}})})
	tests := []struct {
		policy      OnError
		verdict     abi.Verdict
		reply       abi.Reply
		decidedBy   string
		wantActions []string
	}{
		{OnErrorTempFail, abi.TempFail, abi.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary failure in mail policy, try again later"}, "crlf", []string{"X-Before"}},
		{OnErrorReject, abi.Reject, abi.Reply{Code: 550, Enhanced: "5.7.0", Text: "Message refused by mail policy"}, "crlf", []string{"X-Before"}},
		{OnErrorAccept, abi.Accept, abi.Reply{}, "crlf", []string{"X-Before"}},
		{OnErrorContinue, abi.Continue, abi.Reply{}, "", []string{"X-Before", "X-After"}},
	}
	for _, tc := range tests {
		t.Run(tc.policy.String(), func(t *testing.T) {
			bad := load(t, h, Spec{Name: "crlf", Wasm: watFile(t, "crlf"), OnError: tc.policy})
			defer bad.Close(context.Background())
			res := NewChain(before, bad, after).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
			if res.Verdict != tc.verdict || res.Reply != tc.reply || res.DecidedBy != tc.decidedBy {
				t.Fatalf("got verdict %v reply %+v by %q, want %v %+v by %q",
					res.Verdict, res.Reply, res.DecidedBy, tc.verdict, tc.reply, tc.decidedBy)
			}
			var names []string
			for _, a := range res.Actions {
				names = append(names, a.Name)
			}
			if !reflect.DeepEqual(names, tc.wantActions) {
				t.Fatalf("actions %v, want %v (the failed plugin's are dropped)", names, tc.wantActions)
			}
			if len(res.Failures) != 1 || res.Failures[0].Kind != FailureInvalidAnswer {
				t.Fatalf("failures %+v, want one invalid answer", res.Failures)
			}
		})
	}
}

func TestValidationRefusals(t *testing.T) {
	h, rec := newTestHost(t)
	tests := []struct {
		name   string
		hook   abi.Hook
		answer abi.Answer
		want   string
	}{
		{"reply code class", abi.HookMessage, abi.Answer{Verdict: abi.Reject, Reply: abi.Reply{Code: 451}}, "does not fit verdict reject"},
		{"reply with continue", abi.HookMessage, abi.Answer{Reply: abi.Reply{Code: 550}}, "a reply goes only with reject or tempfail"},
		{"NUL in reply", abi.HookMessage, abi.Answer{Verdict: abi.TempFail, Reply: abi.Reply{Code: 451, Text: "a\x00b"}}, "contains NUL"},
		{"header name with colon", abi.HookMessage, abi.Answer{Actions: []abi.Action{addHeader("X-A:", "v")}}, "is not allowed"},
		{"verdict at delay", abi.HookDelay, abi.Answer{Verdict: abi.Reject}, "the delay hook answers with actions"},
		{"header change at connect", abi.HookConnect, abi.Answer{Actions: []abi.Action{addHeader("X-A", "v")}}, "not connect"},
		{"notify outside delay", abi.HookMessage, abi.Answer{Actions: []abi.Action{{Kind: abi.Notify, Value: "x"}}}, "only at the delay hook"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t, h, Spec{Name: "fixed", Wasm: fixedWasm(t, tc.answer), OnError: OnErrorContinue})
			defer p.Close(context.Background())
			res := NewChain(p).Run(context.Background(), tc.hook, &abi.Event{}, nil)
			if len(res.Failures) != 1 {
				t.Fatalf("got %+v, want one failure", res)
			}
			f := res.Failures[0]
			if f.Kind != FailureInvalidAnswer || !errors.Is(f.Err, abi.ErrInvalid) || !strings.Contains(f.Err.Error(), tc.want) {
				t.Fatalf("failure %v (%v), want invalid answer containing %q", f.Err, f.Kind, tc.want)
			}
			prefix := `plugin "fixed": hook ` + tc.hook.String() + ": invalid_answer: "
			if !strings.HasPrefix(f.Err.Error(), prefix) {
				t.Fatalf("error %q does not start with %q", f.Err, prefix)
			}
			if res.Verdict != abi.Continue || len(res.Actions) != 0 {
				t.Fatalf("an invalid answer was applied: %+v", res)
			}
		})
	}
	logged := rec.find(func(l recordedLog) bool {
		return l.Message == "plugin failed" && l.Attrs["plugin"] == "fixed" && l.Attrs["kind"] == "invalid_answer" && l.Attrs["hook"] != ""
	})
	if len(logged) != len(tests) {
		t.Fatalf("%d failure log lines, want %d", len(logged), len(tests))
	}
}

func TestDelayHookActions(t *testing.T) {
	h, _ := newTestHost(t)
	notify := abi.Action{Kind: abi.Notify, Value: "Your message is delayed.\r\nWe keep trying."}
	p := load(t, h, Spec{Name: "delay", Wasm: fixedWasm(t, abi.Answer{Actions: []abi.Action{notify}})})
	res := NewChain(p).Run(context.Background(), abi.HookDelay, &abi.Event{}, nil)
	if len(res.Failures) != 0 || !reflect.DeepEqual(res.Actions, []abi.Action{notify}) {
		t.Fatalf("got %+v", res)
	}
}

// TestABIDocExample keeps the minimal plugin in sdk/ABI.md working.
func TestABIDocExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "sdk", "ABI.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```wat\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no ```wat block in sdk/ABI.md")
	}
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "doc", Wasm: watSource(t, "doc", src)})
	res := NewChain(p).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	if !reflect.DeepEqual(res.Actions, []abi.Action{addHeader("X-Good", "yes")}) || len(res.Failures) != 0 {
		t.Fatalf("got %+v", res)
	}
}
