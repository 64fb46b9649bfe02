package sdk

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

func TestConfigGetters(t *testing.T) {
	cfg := newConfig([]abi.ConfigEntry{
		{Key: "greeting", Values: []string{"hi"}},
		{Key: "max", Values: []string{"42"}},
		{Key: "on", Values: []string{"true"}},
		{Key: "wait", Values: []string{"1h30m"}},
		{Key: "allow.networks", Values: []string{"10.0.0.0/8", "::1/128"}},
		{Key: "empty", Values: []string{}},
	})
	if got := cfg.String("greeting", "x"); got != "hi" {
		t.Errorf("String = %q", got)
	}
	if got := cfg.String("absent", "def"); got != "def" {
		t.Errorf("String default = %q", got)
	}
	if got := cfg.Int("max", 1); got != 42 {
		t.Errorf("Int = %d", got)
	}
	if got := cfg.Bool("on", false); !got {
		t.Error("Bool = false")
	}
	if got := cfg.Duration("wait", 0); got != 90*time.Minute {
		t.Errorf("Duration = %v", got)
	}
	if got := cfg.Strings("allow.networks", nil); !reflect.DeepEqual(got, []string{"10.0.0.0/8", "::1/128"}) {
		t.Errorf("Strings = %q", got)
	}
	if got := cfg.Strings("greeting", nil); !reflect.DeepEqual(got, []string{"hi"}) {
		t.Errorf("Strings of a scalar = %q", got)
	}
	if got := cfg.Strings("empty", []string{"d"}); len(got) != 0 {
		t.Errorf("Strings of an empty list = %q, want empty (the key is set)", got)
	}
	if err := cfg.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	wantKeys := []string{"greeting", "max", "on", "wait", "allow.networks", "empty"}
	if got := cfg.Keys(); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Keys = %q", got)
	}
	if u := cfg.Unread(); len(u) != 0 {
		t.Errorf("Unread = %q after reading every key", u)
	}
}

func TestConfigMalformedValuesAreReported(t *testing.T) {
	cfg := NewConfig(map[string][]string{
		"n":    {"4.5"},
		"b":    {"yes"},
		"d":    {"30"},
		"list": {"a", "b"},
	})
	if got := cfg.Int("n", 7); got != 7 {
		t.Errorf("Int of a malformed value = %d, want the default", got)
	}
	if got := cfg.Bool("b", true); !got {
		t.Error("Bool of a malformed value did not return the default")
	}
	if got := cfg.Duration("d", time.Second); got != time.Second {
		t.Errorf("Duration of a bare number = %v, want the default", got)
	}
	if got := cfg.String("list", "x"); got != "x" {
		t.Errorf("String of a list = %q, want the default", got)
	}
	err := cfg.Err()
	if err == nil {
		t.Fatal("no error for malformed values")
	}
	for _, want := range []string{`"n": "4.5" is not an integer`, `"b": "yes" is not true or false`, `"d": "30" is not a duration`, `"list": want a single value`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestConfigUnreadAndZero(t *testing.T) {
	cfg := NewConfig(map[string][]string{"used": {"1"}, "typo": {"2"}})
	cfg.Int("used", 0)
	if got := cfg.Unread(); !reflect.DeepEqual(got, []string{"typo"}) {
		t.Errorf("Unread = %q", got)
	}
	if !cfg.Has("typo") || cfg.Has("nope") {
		t.Error("Has is wrong")
	}
	var zero Config
	if zero.String("k", "d") != "d" || zero.Err() != nil || len(zero.Keys()) != 0 {
		t.Error("the zero Config is not an empty config")
	}
}

func TestConfigDuplicateKeyKeepsLast(t *testing.T) {
	cfg := newConfig([]abi.ConfigEntry{{Key: "k", Values: []string{"1"}}, {Key: "k", Values: []string{"2"}}})
	if got := cfg.Int("k", 0); got != 2 {
		t.Errorf("Int = %d, want the last value", got)
	}
	if got := cfg.Keys(); len(got) != 1 {
		t.Errorf("Keys = %q, want one", got)
	}
	if errors.Unwrap(cfg.Err()) != nil {
		t.Errorf("Err = %v", cfg.Err())
	}
}
