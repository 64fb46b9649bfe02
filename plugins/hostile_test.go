package plugins

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// The hostile-plugin suite (issue 7): every misbehaviour a plugin can show
// at run time, each run as the first plugin of a chain next to good.wat,
// under concurrent load, with the checks the issue lists: the message gets
// the plugin's on_error outcome, the instance is replaced and the next call
// works, other messages are undisturbed, the failure is counted by kind and
// logged naming plugin and kind. Load-time misbehaviour must be refused at
// Load, naming the plugin, while a good chain keeps serving.

const (
	hostileWorkers  = 4 // concurrent sessions
	hostileMessages = 6 // per worker; half of them carry X-Policy: tempfail
)

// hostileCase is one misbehaving guest.
type hostileCase struct {
	name     string
	wasm     func(testing.TB) []byte
	timeout  time.Duration // 0: the test default (5 s)
	memory   uint64        // 0: the default cap
	bad      abi.Hook      // the hook that misbehaves
	ok       abi.Hook      // a hook the same guest answers properly
	hasOK    bool
	kind     FailureKind
	policies []OnError // default: tempfail and continue
	// workers and messages override hostileWorkers and hostileMessages
	// for a case that costs much per call.
	workers, messages int
}

func hostileCases() []hostileCase {
	return []hostileCase{
		{name: "loop", wasm: wat("loop"), timeout: 50 * time.Millisecond,
			bad: abi.HookHeaders, ok: abi.HookConnect, hasOK: true, kind: FailureTimeout},
		{name: "loop-in-log", wasm: wat("hostloop"), timeout: 50 * time.Millisecond,
			bad: abi.HookHeaders, ok: abi.HookConnect, hasOK: true, kind: FailureTimeout},
		{name: "loop-in-kv-incr", wasm: wat("hostloop"), timeout: 50 * time.Millisecond,
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureTimeout},
		{name: "memory-past-cap", wasm: wat("grow"), memory: 1 << 20,
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureOutOfMemory},
		{name: "trap", wasm: wat("hostile"),
			bad: abi.HookConnect, ok: abi.HookMessage, hasOK: true, kind: FailureTrap,
			policies: []OnError{OnErrorTempFail, OnErrorContinue, OnErrorAccept, OnErrorReject}},
		// wazero grows a call stack up to 400 MB of host memory (outside
		// the guest's cap) before it reports the overflow: fewer at once.
		{name: "stack-overflow", wasm: wat("recurse"),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureTrap, workers: 2, messages: 3},
		{name: "go-sdk-panic", wasm: goGuest("./testdata/plugins/panic"),
			bad: abi.HookHeaders, kind: FailureTrap},
		{name: "header-value-crlf", wasm: wat("crlf"),
			bad: abi.HookMessage, kind: FailureInvalidAnswer},
		{name: "header-value-bare-cr", wasm: answerGuest(badHeader("X-Bad", "a\rb")),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "header-value-nul", wasm: answerGuest(badHeader("X-Bad", "a\x00b")),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "header-name-lf", wasm: answerGuest(badHeader("X-Bad\nInjected", "yes")),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "header-name-nul", wasm: answerGuest(badHeader("X-Bad\x00", "yes")),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "header-value-10MB", wasm: bigHeaderGuest(10 << 20),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "10000-actions", wasm: answerGuest(manyActions(10000)),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
		{name: "reply-text-crlf", wasm: answerGuest(abi.Answer{Verdict: abi.TempFail,
			Reply: abi.Reply{Code: 451, Enhanced: "4.7.1", Text: "later\r\n250 2.0.0 Ok: queued"}}),
			bad: abi.HookMessage, ok: abi.HookConnect, hasOK: true, kind: FailureInvalidAnswer},
	}
}

func TestHostilePluginsUnderLoad(t *testing.T) {
	for _, tc := range hostileCases() {
		policies := tc.policies
		if policies == nil {
			policies = []OnError{OnErrorTempFail, OnErrorContinue}
		}
		for _, policy := range policies {
			t.Run(tc.name+"/"+policy.String(), func(t *testing.T) {
				runHostile(t, tc, policy)
			})
		}
	}
}

// runHostile runs one case under one on_error policy.
func runHostile(t *testing.T, tc hostileCase, policy OnError) {
	h, rec := newTestHost(t, func(c *HostConfig) { c.KV = &testKV{} })
	workers, messages := hostileWorkers, hostileMessages
	if tc.workers > 0 {
		workers, messages = tc.workers, tc.messages
	}
	timeout := tc.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	// Twice the workers: a discarded instance's replacement may hold a
	// slot for a moment, and no call here should wait for one.
	bad := load(t, h, Spec{Name: tc.name, Wasm: tc.wasm(t), Timeout: timeout, MemoryLimit: tc.memory,
		OnError: policy, MaxInstances: 2 * workers})
	good := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good"), MaxInstances: 2 * workers})
	withBad, goodOnly := NewChain(bad, good), NewChain(good)

	var wg sync.WaitGroup
	errs := make(chan error, workers*messages*4)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < messages; i++ {
				tempfail := (w+i)%2 == 0
				id := fmt.Sprintf("<%d.%d@hostile.test>", w, i)
				// The affected message.
				res := withBad.Run(context.Background(), tc.bad, policyEvent(id, tempfail), nil)
				if err := checkAffected(tc, policy, tempfail, res); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
				// Another message at the same moment, through the good
				// plugin alone: it must get exactly its own verdict.
				other := goodOnly.Run(context.Background(), abi.HookHeaders, policyEvent(id+"-other", !tempfail), nil)
				if err := checkGood(abi.HookHeaders, !tempfail, other); err != nil {
					errs <- fmt.Errorf("%s (other message): %w", id, err)
				}
				// The same plugin, asked what it answers properly, works:
				// its failed instance was discarded, not reused broken.
				if tc.hasOK {
					res := withBad.Run(context.Background(), tc.ok, policyEvent(id+"-ok", false), nil)
					if len(res.Failures) != 0 {
						errs <- fmt.Errorf("%s: %s after the failure: %v", id, tc.ok, res.Failures)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	affected := uint64(workers * messages)
	if st := bad.Stats(); st.Failures[tc.kind] != affected || len(st.Failures) != 1 {
		t.Errorf("%s's failures by kind: %v, want %d %s and nothing else", tc.name, st.Failures, affected, tc.kind)
	}
	if st := good.Stats(); len(st.Failures) != 0 {
		t.Errorf("the good plugin failed: %v", st.Failures)
	}
	lines := rec.find(func(l recordedLog) bool {
		return l.Message == "plugin failed" && l.Attrs["plugin"] == tc.name && l.Attrs["kind"] == tc.kind.String()
	})
	if uint64(len(lines)) != affected {
		t.Errorf("%d log lines name plugin %q and kind %s, want %d", len(lines), tc.name, tc.kind, affected)
	}
	if others := rec.find(func(l recordedLog) bool { return l.Message == "plugin failed" && l.Attrs["plugin"] != tc.name }); len(others) != 0 {
		t.Errorf("failure lines for other plugins: %+v", others)
	}
	// Replaced: fresh instances were made in the background and the pool
	// settles within its bound with every instance idle.
	waitFor(t, "replacement instances", func() bool {
		st := bad.Stats()
		return st.Replacements > 0 && st.Instances >= 1 && st.Idle == st.Instances && st.Instances <= st.MaxInstances
	})
	if tc.hasOK {
		if res := NewChain(bad).Run(context.Background(), tc.ok, &abi.Event{}, nil); len(res.Failures) != 0 || res.Verdict != abi.Continue {
			t.Errorf("a call after the load: %+v", res)
		}
	}
}

// policyEvent is a message of three ordinary headers plus its Message-ID
// and, when tempfail is set, the header that makes good.wat answer 451.
func policyEvent(id string, tempfail bool) *abi.Event {
	policy := "none"
	if tempfail {
		policy = "tempfail"
	}
	return headerEvent(3, abi.Header{Name: "Message-ID", Value: id}, abi.Header{Name: "X-Policy", Value: policy})
}

// checkAffected checks the outcome of a message whose hostile plugin failed.
func checkAffected(tc hostileCase, policy OnError, tempfail bool, res Result) error {
	if len(res.Failures) != 1 || res.Failures[0].Plugin != tc.name || res.Failures[0].Kind != tc.kind || res.Failures[0].Hook != tc.bad {
		return fmt.Errorf("failures %v, want one %s failure of %s at %s", res.Failures, tc.kind, tc.name, tc.bad)
	}
	if msg := res.Failures[0].Err.Error(); !strings.Contains(msg, fmt.Sprintf("plugin %q: hook %s: %s", tc.name, tc.bad, tc.kind)) {
		return fmt.Errorf("failure error %q does not name plugin, hook and kind", msg)
	}
	if policy == OnErrorContinue {
		return checkGood(tc.bad, tempfail, res)
	}
	want := Result{Verdict: abi.TempFail, Reply: failureTempFailReply}
	switch policy {
	case OnErrorAccept:
		want = Result{Verdict: abi.Accept}
	case OnErrorReject:
		want = Result{Verdict: abi.Reject, Reply: failureRejectReply}
	}
	if res.Verdict != want.Verdict || res.Reply != want.Reply || res.DecidedBy != tc.name || len(res.Actions) != 0 {
		return fmt.Errorf("on_error %s: got %v %+v decided by %q with %d actions", policy, res.Verdict, res.Reply, res.DecidedBy, len(res.Actions))
	}
	return nil
}

// checkGood checks that res is what good.wat alone answers at hook.
func checkGood(hook abi.Hook, tempfail bool, res Result) error {
	for _, f := range res.Failures {
		if f.Plugin == "good" {
			return fmt.Errorf("the good plugin failed: %v", f.Err)
		}
	}
	switch {
	case hook == abi.HookHeaders && tempfail:
		want := abi.Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted by policy, retry later"}
		if res.Verdict != abi.TempFail || res.Reply != want || res.DecidedBy != "good" {
			return fmt.Errorf("got %v %+v by %q, want good's 451 4.7.1", res.Verdict, res.Reply, res.DecidedBy)
		}
	case hook == abi.HookMessage:
		if res.Verdict != abi.Continue || len(res.Actions) != 1 || res.Actions[0].Name != "X-Good" || res.Actions[0].Value != "yes" {
			return fmt.Errorf("got %v with actions %+v, want continue and good's X-Good: yes only", res.Verdict, res.Actions)
		}
	default:
		if res.Verdict != abi.Continue || res.DecidedBy != "" || len(res.Actions) != 0 {
			return fmt.Errorf("got %v by %q with %+v, want continue", res.Verdict, res.DecidedBy, res.Actions)
		}
	}
	return nil
}

func TestHostilePluginsRefusedAtLoad(t *testing.T) {
	h, _ := newTestHost(t)
	good := NewChain(load(t, h, Spec{Name: "good", Wasm: watFile(t, "good")}))
	tests := []struct {
		name   string
		wasm   func(testing.TB) []byte
		config []abi.ConfigEntry
		want   string
	}{
		{"wrong-abi-version", wat("badversion"), nil, "ABI version 7, this wasmilter speaks 1"},
		{"go-wrong-abi-version", goGuest("./testdata/plugins/badabi"), nil, "ABI version 999"},
		{"missing-buffer-export", wat("noexport"), nil, "missing export wasmilter_buffer"},
		{"missing-memory-export", wat("nomemory"), nil, "missing export memory"},
		{"hook-wrong-signature", wat("badsig"), nil, "export wasmilter_on_headers has signature (i32)->i32, want (i32)->i64"},
		{"buffer-wrong-signature", wat("badbuffer"), nil, "export wasmilter_buffer has signature (i64)->i32, want (i32)->i32"},
		{"trap-in-initialize", wat("inittrap"), nil, "trapped during initialization (_initialize)"},
		{"trap-in-init", wat("initcalltrap"), nil, "trapped during initialization (wasmilter_init)"},
		{"go-panic-in-init", goGuest("./testdata/plugins/panic"), []abi.ConfigEntry{{Key: "panic_in", Values: []string{"init"}}},
			"trapped during initialization (wasmilter_init)"},
	}
	// The good chain serves concurrently with every refused load.
	stop := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		var n int
		for {
			select {
			case <-stop:
				if n == 0 {
					served <- fmt.Errorf("no message served during the loads")
				}
				close(served)
				return
			default:
			}
			if err := checkGood(abi.HookHeaders, n%2 == 0, good.Run(context.Background(), abi.HookHeaders, policyEvent("x", n%2 == 0), nil)); err != nil {
				served <- err
				close(served)
				return
			}
			n++
		}
	}()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := h.Load(context.Background(), Spec{Name: tc.name, Source: tc.name + ".wasm", Wasm: tc.wasm(t), Config: tc.config})
			if err == nil {
				p.Close(context.Background())
				t.Fatalf("Load succeeded, want an error containing %q", tc.want)
			}
			prefix := fmt.Sprintf("plugin %q (%s.wasm): ", tc.name, tc.name)
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant prefix %q and %q", err, prefix, tc.want)
			}
		})
	}
	close(stop)
	for err := range served {
		t.Errorf("good chain during the loads: %v", err)
	}
	// The host still loads and runs plugins after all of that.
	if res := NewChain(load(t, h, Spec{Name: "good-again", Wasm: watFile(t, "good")})).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil); len(res.Failures) != 0 {
		t.Fatalf("a plugin loaded after the refusals: %+v", res)
	}
}

// TestSandboxDeniesWASI: the WASI calls a plugin could reach files, sockets
// or the environment with all fail. (The Go-guest version, with file reads
// and the environment through Go's os package, is in internal/wasmtest.)
func TestSandboxDeniesWASI(t *testing.T) {
	t.Setenv("WASMILTER_SECRET_FOR_SANDBOX_TEST", "must-not-leak")
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "sandbox", Wasm: watFile(t, "sandbox"), MaxInstances: 1})
	inst, err := p.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.put(inst)
	if _, err := inst.callHook(&callContext{Context: context.Background(), inst: inst}, abi.HookMessage,
		abi.AppendEvent(nil, &abi.Event{Hook: abi.HookMessage})); err != nil {
		t.Fatalf("sandbox guest: %v", err)
	}
	read := func(off uint32) uint32 {
		v, ok := inst.mem.ReadUint32Le(off)
		if !ok {
			t.Fatalf("read guest memory at %d", off)
		}
		return v
	}
	for _, c := range []struct {
		off  uint32
		call string
	}{
		{256, "path_open(3, /etc/passwd)"}, {260, "path_open(4, /etc/passwd)"}, {264, "fd_prestat_get(3)"},
		{268, "sock_accept(3)"}, {272, "sock_accept(0)"}, {276, "sock_recv(3)"}, {280, "sock_send(3)"},
		{284, "sock_shutdown(3)"}, {288, "fd_read(3)"},
	} {
		if errno := read(c.off); errno == 0 {
			t.Errorf("%s succeeded inside the sandbox", c.call)
		}
	}
	if n := read(292); n != 0 {
		t.Errorf("the plugin sees %d environment variables", n)
	}
	if n := read(296); n != 0 {
		t.Errorf("the plugin sees %d arguments", n)
	}
}

// TestHostModuleHasNoNetwork: module "wasmilter" offers exactly the ABI's
// host functions; a new one (say, a socket) must be a deliberate change here.
func TestHostModuleHasNoNetwork(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good")})
	mod := p.shared.rt.Module(abi.HostModule)
	if mod == nil {
		t.Fatal("no host module")
	}
	var got []string
	for name := range mod.ExportedFunctionDefinitions() {
		got = append(got, name)
	}
	want := []string{abi.HostKVGet, abi.HostKVIncr, abi.HostKVSet, abi.HostLog, abi.HostMacro, abi.HostNow,
		abi.HostProperties, abi.HostRecord, abi.HostStamp}
	if strings.Join(sorted(got), " ") != strings.Join(sorted(want), " ") {
		t.Errorf("host functions %v, want exactly %v", sorted(got), sorted(want))
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// wat returns a builder for plugins/testdata/<name>.wat.
func wat(name string) func(testing.TB) []byte {
	return func(tb testing.TB) []byte { return watFile(tb, name) }
}

// goGuest returns a builder for a Go test guest of the module.
func goGuest(pkg string) func(testing.TB) []byte {
	return func(tb testing.TB) []byte { return wasmtest.BuildGo(tb, pkg) }
}

func badHeader(name, value string) abi.Answer {
	return abi.Answer{Actions: []abi.Action{{Kind: abi.AddHeader, Name: name, Value: value}}}
}

func manyActions(n int) abi.Answer {
	var a abi.Answer
	for i := 0; i < n; i++ {
		a.Actions = append(a.Actions, abi.Action{Kind: abi.AddHeader, Name: "X-A", Value: "b"})
	}
	return a
}

// answerGuest builds testdata/answer.wat answering a at the message hook.
func answerGuest(a abi.Answer) func(testing.TB) []byte {
	return func(tb testing.TB) []byte {
		enc := abi.AppendAnswer(nil, &a)
		return answerWat(tb, enc, 0, len(enc))
	}
}

// bigHeaderGuest builds testdata/answer.wat answering an added header whose
// value is n bytes of 'x': the answer's head is written as data, the value
// filled in at each call, and the trailing zero (no ESMTP arguments) is the
// memory's own.
func bigHeaderGuest(n int) func(testing.TB) []byte {
	return func(tb testing.TB) []byte {
		enc := abi.AppendAnswer(nil, &abi.Answer{Actions: []abi.Action{{Kind: abi.AddHeader, Name: "X-Big", Value: strings.Repeat("x", n)}}})
		head := len(enc) - n - 1
		if enc[len(enc)-1] != 0 || strings.Trim(string(enc[head:len(enc)-1]), "x") != "" {
			tb.Fatal("unexpected encoding of an added header")
		}
		return answerWat(tb, enc[:head], n, len(enc))
	}
}

func answerWat(tb testing.TB, head []byte, fill, total int) []byte {
	tb.Helper()
	tmpl, err := os.ReadFile("testdata/answer.wat")
	if err != nil {
		tb.Fatal(err)
	}
	var esc strings.Builder
	for _, c := range head {
		fmt.Fprintf(&esc, "\\%02x", c)
	}
	const base = 131072
	pages := (base+total)/wasmPageSize + 1
	src := strings.NewReplacer("__PAGES__", fmt.Sprint(pages), "__ANSWER__", esc.String(),
		"__FILL_AT__", fmt.Sprint(base+len(head)), "__FILL_LEN__", fmt.Sprint(fill), "__TOTAL__", fmt.Sprint(total)).Replace(string(tmpl))
	return watSource(tb, "answer", src)
}

// testKV is a KVStore for the guests that call kv_* host functions.
type testKV struct {
	mu   sync.Mutex
	vals map[string][]byte
	ctrs map[string]int64
}

func (k *testKV) KVGet(ns, key string) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.vals[ns+"/"+key]
	return v, ok
}

func (k *testKV) KVSet(ns, key string, value []byte, _ time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.vals == nil {
		k.vals = map[string][]byte{}
	}
	k.vals[ns+"/"+key] = value
	return nil
}

func (k *testKV) KVIncr(ns, key string, delta int64, _ time.Duration) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctrs == nil {
		k.ctrs = map[string]int64{}
	}
	k.ctrs[ns+"/"+key] += delta
	return k.ctrs[ns+"/"+key], nil
}
