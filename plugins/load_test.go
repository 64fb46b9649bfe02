package plugins

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func TestLoadErrors(t *testing.T) {
	h, _ := newTestHost(t)
	tests := []struct {
		name string
		wasm func(testing.TB) []byte
		want string
	}{
		{"text", func(testing.TB) []byte { return []byte("(module)") }, `plugin "text" (testdata/text.wat): not a WebAssembly module`},
		{"empty", func(testing.TB) []byte { return nil }, `plugin "empty" (testdata/empty.wat): not a WebAssembly module`},
		{"truncated", func(testing.TB) []byte { return []byte("\x00asm\x01\x00\x00\x00\x01\x05") }, `plugin "truncated" (testdata/truncated.wat): compile: `},
		{"badversion", func(tb testing.TB) []byte { return watFile(tb, "badversion") }, `plugin "badversion" (testdata/badversion.wat): ABI version 7, this wasmilter speaks 1`},
		{"noexport", func(tb testing.TB) []byte { return watFile(tb, "noexport") }, `plugin "noexport" (testdata/noexport.wat): missing export wasmilter_buffer`},
		{"badsig", func(tb testing.TB) []byte { return watFile(tb, "badsig") }, `plugin "badsig" (testdata/badsig.wat): export wasmilter_on_headers has signature (i32)->i32, want (i32)->i64`},
		{"initerror", func(tb testing.TB) []byte { return watFile(tb, "initerror") }, `plugin "initerror" (testdata/initerror.wat): wasmilter_init: config key "threshold" is required`},
		{"inittrap", func(tb testing.TB) []byte { return watFile(tb, "inittrap") }, `plugin "inittrap" (testdata/inittrap.wat): trapped during initialization (_initialize): `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := h.Load(context.Background(), Spec{Name: tc.name, Source: "testdata/" + tc.name + ".wat", Wasm: tc.wasm(t)})
			if err == nil {
				p.Close(context.Background())
				t.Fatalf("Load succeeded, want error %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error\n got %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestLoadBadSpec(t *testing.T) {
	h, _ := newTestHost(t)
	for name, spec := range map[string]Spec{
		"no name":        {Source: "x.wasm"},
		"huge memory":    {Name: "m", MemoryLimit: 5 << 30},
		"negative":       {Name: "n", Timeout: -time.Second},
		"bad on_error":   {Name: "o", OnError: OnError(9)},
		"memory min cap": {Name: "c", MemoryLimit: 64 << 10}, // good.wat needs 2 pages
	} {
		if name == "memory min cap" {
			spec.Wasm = watFile(t, "good")
		}
		if _, err := h.Load(context.Background(), spec); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
	}
}

func TestLoadDefaultsAndHooks(t *testing.T) {
	h, _ := newTestHost(t)
	p, err := h.Load(context.Background(), Spec{Name: "good", Wasm: watFile(t, "good"), MemoryLimit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	spec := p.Spec()
	if spec.Timeout != 100*time.Millisecond {
		t.Errorf("Timeout = %v, want 100ms", spec.Timeout)
	}
	if spec.MemoryLimit != 2*65536 {
		t.Errorf("MemoryLimit = %d, want rounded up to 2 pages", spec.MemoryLimit)
	}
	if want := max(2, runtime.GOMAXPROCS(0)); spec.MaxInstances != want {
		t.Errorf("MaxInstances = %d, want %d", spec.MaxInstances, want)
	}
	// good.wat exports helo too, but its init answer narrows the hooks.
	if got := p.Hooks().String(); got != "connect,headers,message" {
		t.Errorf("Hooks = %s, want connect,headers,message", got)
	}
	st := p.Stats()
	if st.Instances != 1 || st.Idle != 1 {
		t.Errorf("after Load: %d instances, %d idle; want the first instance pooled", st.Instances, st.Idle)
	}
}

func TestHostCloseClosesPlugins(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, Spec{Name: "good", Wasm: watFile(t, "good")})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := NewChain(p).Run(context.Background(), abi.HookConnect, &abi.Event{}, nil)
	if len(res.Failures) != 1 || res.Failures[0].Kind != FailureUnavailable {
		t.Fatalf("call after close: %+v, want one unavailable failure", res)
	}
	if _, err := h.Load(context.Background(), Spec{Name: "late", Wasm: watFile(t, "good")}); err == nil {
		t.Fatal("Load on a closed host succeeded")
	}
}

func TestCompilationCacheDir(t *testing.T) {
	dir := t.TempDir()
	wasm := watFile(t, "good")
	for i := 0; i < 2; i++ { // the second host starts from the files the first wrote
		h, err := NewHost(context.Background(), HostConfig{CompilationCacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.Load(context.Background(), Spec{Name: "good", Wasm: wasm})
		if err != nil {
			t.Fatal(err)
		}
		res := NewChain(p).Run(context.Background(), abi.HookMessage, &abi.Event{}, nil)
		if len(res.Actions) != 1 {
			t.Fatalf("run %d: %+v", i, res)
		}
		if err := h.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseOnError(t *testing.T) {
	for _, o := range []OnError{OnErrorTempFail, OnErrorAccept, OnErrorReject, OnErrorContinue} {
		got, err := ParseOnError(" " + strings.ToUpper(o.String()) + " ")
		if err != nil || got != o {
			t.Errorf("ParseOnError(%q) = %v, %v", o.String(), got, err)
		}
	}
	if _, err := ParseOnError("ignore"); err == nil || !strings.Contains(err.Error(), "tempfail, accept, reject, continue") {
		t.Errorf("ParseOnError(ignore) error = %v", err)
	}
	var zero OnError
	if zero != OnErrorTempFail {
		t.Error("the zero OnError must be tempfail")
	}
}
