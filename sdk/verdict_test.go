package sdk

import (
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func TestVerdicts(t *testing.T) {
	tests := []struct {
		v    Verdict
		kind abi.Verdict
		str  string
	}{
		{Continue(), abi.Continue, "continue"},
		{Verdict{}, abi.Continue, "continue"},
		{Accept(), abi.Accept, "accept"},
		{Discard(), abi.Discard, "discard"},
		{Reject(550, "5.7.1", "no thanks"), abi.Reject, `reject 550 5.7.1 "no thanks"`},
		{Reject(0, "", ""), abi.Reject, "reject"},
		{TempFail(451, "", "later"), abi.TempFail, `tempfail 451 "later"`},
	}
	for _, tt := range tests {
		if tt.v.Kind() != tt.kind {
			t.Errorf("%v: kind %v, want %v", tt.v, tt.v.Kind(), tt.kind)
		}
		if got := tt.v.String(); got != tt.str {
			t.Errorf("String() = %q, want %q", got, tt.str)
		}
	}
	if r := TempFail(421, "4.3.2", "x").Reply(); r != (abi.Reply{Code: 421, Enhanced: "4.3.2", Text: "x"}) {
		t.Errorf("TempFail reply = %+v", r)
	}
}
