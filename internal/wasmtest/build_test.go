package wasmtest

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// TestBuildGoBadABI builds a hand-written guest and runs its version export
// in wazero: proof that BuildGo yields a loadable reactor, not just bytes.
func TestBuildGoBadABI(t *testing.T) {
	wasm := BuildGo(t, "./testdata/plugins/badabi")
	if string(wasm[:4]) != "\x00asm" {
		t.Fatalf("output does not start with the Wasm magic: %q", wasm[:4])
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	res, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ctx)
	if err != nil {
		t.Fatalf("call %s: %v", abi.ExportABIVersion, err)
	}
	if got := int32(res[0]); got != 999 {
		t.Errorf("%s() = %d, want 999", abi.ExportABIVersion, got)
	}
}

func TestBuildGoCaches(t *testing.T) {
	a := BuildGo(t, "./testdata/plugins/badabi")
	b := BuildGo(t, "./testdata/plugins/badabi")
	if &a[0] != &b[0] {
		t.Error("second build of the same package was not served from the cache")
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := build("testdata/plugins/badabi"); err == nil || !strings.Contains(err.Error(), "relative to the module root") {
		t.Errorf("path without ./: err = %v, want a hint about ./", err)
	}
	_, err := build("./testdata/plugins/does-not-exist")
	if err == nil {
		t.Fatal("building a missing package succeeded")
	}
	if !strings.Contains(err.Error(), "does-not-exist") {
		t.Errorf("error does not carry the compiler output: %v", err)
	}
}
