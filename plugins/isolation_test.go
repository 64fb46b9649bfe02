package plugins

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// waitFor polls cond until it holds or a generous bound passes; it is for
// background work (instance replacement), not for timing assertions.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestLoopTimesOutAndNextCallWorks(t *testing.T) {
	h, rec := newTestHost(t)
	const timeout = 50 * time.Millisecond
	p := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: timeout, MaxInstances: 1})
	chain := NewChain(p)

	start := time.Now()
	res := chain.Run(context.Background(), abi.HookHeaders, headerEvent(3), nil)
	elapsed := time.Since(start)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureTimeout {
		t.Fatalf("got %+v, want one timeout", res)
	}
	if !errors.Is(res.Failures[0].Err, context.DeadlineExceeded) {
		t.Errorf("timeout error %v does not wrap context.DeadlineExceeded", res.Failures[0].Err)
	}
	// Generous slack for a loaded 2-core machine and -race; a guest that
	// were not stopped would run forever.
	if elapsed > timeout+2*time.Second {
		t.Errorf("the call took %v with a %v timeout", elapsed, timeout)
	}
	if res.Verdict != abi.TempFail || res.DecidedBy != "loop" || res.Reply.Code != 451 {
		t.Errorf("on_error tempfail not applied: %+v", res)
	}

	// The next call is served by a fresh instance.
	res = chain.Run(context.Background(), abi.HookConnect, &abi.Event{}, nil)
	if len(res.Failures) != 0 || res.Verdict != abi.Continue {
		t.Fatalf("call after the timeout: %+v", res)
	}
	st := p.Stats()
	if st.Failures[FailureTimeout] != 1 || st.Calls != 2 || st.Instances != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(rec.find(func(l recordedLog) bool { return l.Attrs["kind"] == "timeout" && l.Attrs["hook"] == "headers" })) != 1 {
		t.Error("no log line for the timeout")
	}
}

func TestOutOfMemory(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "grow", Wasm: watFile(t, "grow"), MemoryLimit: 1 << 20, OnError: OnErrorReject})
	chain := NewChain(p)
	res := chain.Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureOutOfMemory {
		t.Fatalf("got %+v, want one out-of-memory failure", res)
	}
	if res.Verdict != abi.Reject || res.Reply.Code != 550 {
		t.Errorf("on_error reject not applied: %+v", res)
	}
	if res := chain.Run(context.Background(), abi.HookConnect, &abi.Event{}, nil); len(res.Failures) != 0 {
		t.Fatalf("call after OOM: %+v", res)
	}
}

func TestHostileGuest(t *testing.T) {
	h, rec := newTestHost(t)
	p := load(t, h, Spec{Name: "hostile", Wasm: watFile(t, "hostile"), OnError: OnErrorContinue, MaxInstances: 1})
	chain := NewChain(p)
	env := testEnv{macros: map[string]string{"i": "QUEUEID"}}
	tests := []struct {
		hook abi.Hook
		kind FailureKind
		want string
	}{
		{abi.HookConnect, FailureTrap, "unreachable"},
		{abi.HookHelo, FailureTrap, errGuestMemory.Error()},
		{abi.HookMail, FailureInvalidAnswer, "outside guest memory"},
		{abi.HookRcpt, FailureTrap, errGuestMemory.Error()},
		{abi.HookHeaders, FailureExit, "exit_code(3)"},
	}
	for _, tc := range tests {
		res := chain.Run(context.Background(), tc.hook, &abi.Event{}, env)
		if len(res.Failures) != 1 {
			t.Fatalf("%s: %+v, want one failure", tc.hook, res)
		}
		f := res.Failures[0]
		if f.Kind != tc.kind || f.Hook != tc.hook || f.Plugin != "hostile" || !strings.Contains(f.Err.Error(), tc.want) {
			t.Errorf("%s: %v %v, want %v containing %q", tc.hook, f.Kind, f.Err, tc.kind, tc.want)
		}
		if res.Verdict != abi.Continue || res.DecidedBy != "" {
			t.Errorf("%s: on_error continue not applied: %+v", tc.hook, res)
		}
	}
	if res := chain.Run(context.Background(), abi.HookMessage, &abi.Event{}, env); len(res.Failures) != 0 {
		t.Fatalf("message after all failures: %+v", res)
	}
	if n := len(rec.find(func(l recordedLog) bool { return l.Message == "plugin failed" && l.Level == levelError })); n != 4 {
		t.Errorf("%d error-level failure lines, want 4 (traps and exit)", n)
	}
}

func TestConcurrentCallsIsolateFailures(t *testing.T) {
	h, _ := newTestHost(t)
	good := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good"), MaxInstances: 8})
	loop := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: 20 * time.Millisecond, OnError: OnErrorContinue, MaxInstances: 8})
	goodOnly := NewChain(good)
	withLoop := NewChain(loop, good)

	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				policy := "tempfail"
				if (w+i)%2 == 0 {
					policy = "none"
				}
				ev := headerEvent(5, abi.Header{Name: "X-Policy", Value: policy})
				chain := goodOnly
				if w%2 == 1 {
					chain = withLoop // loop times out first, then good must still decide
				}
				res := chain.Run(context.Background(), abi.HookHeaders, ev, nil)
				wantVerdict := abi.Continue
				if policy == "tempfail" {
					wantVerdict = abi.TempFail
				}
				if res.Verdict != wantVerdict {
					errs <- fmt.Errorf("worker %d round %d: verdict %v, want %v (%+v)", w, i, res.Verdict, wantVerdict, res)
				}
				for _, f := range res.Failures {
					if f.Plugin != "loop" {
						errs <- fmt.Errorf("worker %d round %d: good failed: %v", w, i, f.Err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := good.Stats(); len(st.Failures) != 0 || st.Instances > 8 {
		t.Errorf("good stats %+v", st)
	}
	waitFor(t, "loop's replacements", func() bool { return loop.Stats().Replacements > 0 })
}

func TestPoolBound(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: 300 * time.Millisecond, MaxInstances: 2})
	chain := NewChain(p)

	// Two calls occupy both instances until their deadline.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chain.Run(context.Background(), abi.HookHeaders, &abi.Event{}, nil)
		}()
	}
	waitFor(t, "both instances busy", func() bool { st := p.Stats(); return st.Instances == 2 && st.Idle == 0 })

	// A third call may not create a third instance: it waits, bounded by its
	// own (shorter) context deadline, and fails as unavailable.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res := chain.Run(ctx, abi.HookConnect, &abi.Event{}, nil)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureUnavailable {
		t.Fatalf("third call: %+v, want unavailable", res)
	}
	if st := p.Stats(); st.Instances > 2 {
		t.Fatalf("%d instances live, bound is 2", st.Instances)
	}
	wg.Wait()

	// A waiting call gets an instance as soon as one comes back.
	waitFor(t, "pool refilled", func() bool { return p.Stats().Idle == 2 })
	res = chain.Run(context.Background(), abi.HookConnect, &abi.Event{}, nil)
	if len(res.Failures) != 0 {
		t.Fatalf("after the busy calls: %+v", res)
	}
}

func TestWaiterGetsReleasedInstance(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good"), MaxInstances: 1, Timeout: 5 * time.Second})
	inst, err := p.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Failure, 1)
	go func() {
		_, f := p.call(context.Background(), abi.HookConnect, abi.AppendEvent(nil, &abi.Event{Hook: abi.HookConnect}), nil)
		got <- f
	}()
	select {
	case f := <-got:
		t.Fatalf("call finished while the only instance was taken: %v", f)
	case <-time.After(50 * time.Millisecond):
	}
	p.put(inst)
	if f := <-got; f != nil {
		t.Fatalf("waiting call failed: %v", f.Err)
	}
}

func TestCloseWaitsForCalls(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: 200 * time.Millisecond})
	done := make(chan Result, 1)
	go func() { done <- NewChain(p).Run(context.Background(), abi.HookHeaders, &abi.Event{}, nil) }()
	waitFor(t, "call in flight", func() bool { return p.Stats().Idle == 0 })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Had Close not waited, closing the runtime would have ended the call
	// early with another kind of failure; it ran to its own deadline.
	res := <-done
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureTimeout {
		t.Fatalf("in-flight call: %+v, want it to end by its own deadline", res)
	}
}

func TestCanceledCaller(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "loop", Wasm: watFile(t, "loop"), Timeout: 10 * time.Second, MaxInstances: 1})
	chain := NewChain(p)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := chain.Run(ctx, abi.HookConnect, &abi.Event{}, nil)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureCanceled {
		t.Fatalf("pre-canceled: %+v", res)
	}

	// Canceled while the guest runs: the guest is stopped, not waited for.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { // no t.Fatal off the test goroutine: poll, then cancel
		for p.Stats().Idle != 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	res = chain.Run(ctx, abi.HookHeaders, &abi.Event{}, nil)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureCanceled || !errors.Is(res.Failures[0].Err, context.Canceled) {
		t.Fatalf("canceled mid-call: %+v", res)
	}
	waitFor(t, "replacement", func() bool { return p.Stats().Idle == 1 })
}
