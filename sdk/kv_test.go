package sdk

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func TestKV(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	if _, ok := KVGet("missing"); ok {
		t.Fatal("missing key found")
	}
	if err := KVSet("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok := KVGet("k"); !ok || string(v) != "v" {
		t.Fatalf("KVGet = %q, %v", v, ok)
	}
	for i, want := range []int64{3, 6, 4} {
		delta := []int64{3, 3, -2}[i]
		if n, err := KVIncr("c", delta, 0); err != nil || n != want {
			t.Fatalf("KVIncr #%d = %d, %v; want %d", i, n, err, want)
		}
	}
	if err := KVSet(strings.Repeat("k", abi.MaxKVKey+1), nil, 0); !errors.Is(err, ErrKVRefused) {
		t.Fatalf("oversized key: %v", err)
	}
	if _, err := KVIncr("", 1, 0); !errors.Is(err, ErrKVRefused) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestKVWithoutHost(t *testing.T) {
	useHost(t, noHost{})
	if err := KVSet("k", nil, 0); !errors.Is(err, ErrKVRefused) {
		t.Fatalf("no host: %v", err)
	}
}

func TestRecordAndProperties(t *testing.T) {
	f := newFakeHost()
	useHost(t, f)
	m := &Message{}
	if _, ok := m.Record(); ok {
		t.Fatal("record without one")
	}
	rec := abi.Record{ID: "x", FirstSeen: 100, Attempts: 1, State: "deferred"}
	f.recordData = abi.AppendRecord(nil, &rec)
	if got, ok := m.Record(); !ok || got != rec {
		t.Fatalf("Record = %+v, %v", got, ok)
	}
	props := abi.Properties{Subject: "hello", ReceivedCount: 2}
	f.propsData = abi.AppendProperties(nil, &props)
	if got, ok := m.Properties(); !ok || got.Subject != "hello" || got.ReceivedCount != 2 {
		t.Fatalf("Properties = %+v, %v", got, ok)
	}
}
