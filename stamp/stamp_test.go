package stamp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func facts(mid string, rcpts ...string) Facts {
	f := Facts{Sender: "alice@Example.ORG", Recipients: rcpts,
		Headers: []Field{{"Subject", "hello"}, {"Date", "Sun, 22 Nov 2026 06:00:00 +0000"}}}
	if mid != "" {
		f.Headers = append(f.Headers, Field{"Message-ID", mid})
	}
	return f
}

func TestDeriveIsStableUnderNormalization(t *testing.T) {
	a := Derive(facts("<abc@Mail.Example.ORG>", "bob@example.net", "carol@example.net"))
	same := []Facts{
		facts(" <abc@mail.example.org> (comment)", "carol@example.net", "bob@example.net"),             // case of domain, order
		facts("<abc@mail.example.org>", "<bob@EXAMPLE.net>", "carol@example.net", "carol@example.net"), // brackets, dup
		facts("\r\n <abc@mail.example.org>", "bob@example.net", "carol@example.net"),                   // folded
	}
	for i, f := range same {
		if got := Derive(f); got != a {
			t.Errorf("variant %d: identity %s, want %s", i, got, a)
		}
	}
	different := []Facts{
		facts("<abd@mail.example.org>", "bob@example.net", "carol@example.net"), // other Message-ID
		facts("<ABC@mail.example.org>", "bob@example.net", "carol@example.net"), // local part is case-sensitive
		facts("<abc@mail.example.org>", "bob@example.net"),                      // other recipients
	}
	for i, f := range different {
		if got := Derive(f); got == a {
			t.Errorf("different message %d got the same identity", i)
		}
	}
	other := facts("<abc@mail.example.org>", "bob@example.net", "carol@example.net")
	other.Sender = "mallory@example.org"
	if Derive(other) == a {
		t.Error("a different sender got the same identity")
	}
}

func TestDeriveWithoutMessageIDUsesFingerprint(t *testing.T) {
	base := facts("", "bob@example.net")
	a := Derive(base)
	withTrace := base
	withTrace.Headers = append([]Field{{"Received", "from x by y; Sun, 22 Nov 2026 06:01:00 +0000"},
		{DefaultHeader, "v=1"}}, base.Headers...)
	if Derive(withTrace) != a {
		t.Error("trace headers changed the fingerprint identity")
	}
	changed := base
	changed.Headers = []Field{{"Subject", "hello again"}, base.Headers[1]}
	if Derive(changed) == a {
		t.Error("a different Subject gave the same fingerprint identity")
	}
	junk := facts("not a message id", "bob@example.net")
	junk.Headers = junk.Headers[:2]
	if Derive(facts("<>", "bob@example.net")) != Derive(junk) {
		t.Error("an empty <> Message-ID should fall back to the fingerprint")
	}
}

func TestIdentityTextRoundTrip(t *testing.T) {
	id := Derive(facts("<x@y>", "z@w"))
	s := id.String()
	if len(s) != 26 || strings.ToLower(s) != s {
		t.Fatalf("text form %q", s)
	}
	back, err := ParseIdentity(s)
	if err != nil || back != id {
		t.Fatalf("ParseIdentity(%q) = %v, %v", s, back, err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("1", 26), s + "a"} {
		if _, err := ParseIdentity(bad); err == nil {
			t.Errorf("ParseIdentity(%q) accepted", bad)
		}
	}
}

func TestFormatParse(t *testing.T) {
	st := Stamp{ID: Derive(facts("<x@y>", "z@w")), FirstSeen: time.Date(2026, 11, 22, 6, 43, 35, 0, time.UTC)}
	unsigned, _ := NewCodec("", nil)
	v := unsigned.Format(st)
	if want := "v=1; id=" + st.ID.String() + "; t=2026-11-22T06:43:35Z"; v != want {
		t.Fatalf("Format = %q, want %q", v, want)
	}
	if got, err := unsigned.Parse(v); err != nil || got != st {
		t.Fatalf("Parse(unsigned) = %v, %v", got, err)
	}

	key1, key2 := []byte("0123456789abcdef-one"), []byte("0123456789abcdef-two")
	signer, err := NewCodec("", [][]byte{key1})
	if err != nil {
		t.Fatal(err)
	}
	signed := signer.Format(st)
	if !strings.Contains(signed, "; mac=") {
		t.Fatalf("signed stamp has no mac: %q", signed)
	}
	if got, err := signer.Parse(signed); err != nil || got != st {
		t.Fatalf("Parse(signed) = %v, %v", got, err)
	}
	// Rotation: a new key signs, the old one still verifies.
	rotated, _ := NewCodec("", [][]byte{key2, key1})
	if _, err := rotated.Parse(signed); err != nil {
		t.Fatalf("old-key stamp after rotation: %v", err)
	}
	other, _ := NewCodec("", [][]byte{key2})
	if _, err := other.Parse(signed); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("foreign key: err = %v, want ErrBadMAC", err)
	}
	if _, err := signer.Parse(v); !errors.Is(err, ErrNoMAC) {
		t.Fatalf("unsigned stamp with keys configured: err = %v, want ErrNoMAC", err)
	}
	tampered := strings.Replace(signed, "t=2026", "t=2025", 1)
	if _, err := signer.Parse(tampered); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("tampered time: err = %v, want ErrBadMAC", err)
	}
	for _, bad := range []string{"", "v=2; id=x", "v=1; id=" + st.ID.String(), "v=1; v=1", "garbage",
		"v=1; id=" + st.ID.String() + "; t=yesterday"} {
		if _, err := unsigned.Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := NewCodec("", [][]byte{[]byte("short")}); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

func TestInspect(t *testing.T) {
	c, _ := NewCodec("", [][]byte{[]byte("0123456789abcdef")})
	st := Stamp{ID: Derive(facts("<x@y>", "z@w")), FirstSeen: time.Unix(1_800_000_000, 0).UTC()}
	good := c.Format(st)
	f := c.Inspect([]Field{{"x-wasmilter-stamp", "v=1; id=forged"}, {"Subject", "s"}, {DefaultHeader, good}, {DefaultHeader, good}})
	if !f.Valid || f.Stamp != st || f.Value != good {
		t.Fatalf("valid stamp not found: %+v", f)
	}
	if len(f.Invalid) != 1 || f.Invalid[0] != 1 || len(f.Errors) != 1 {
		t.Fatalf("invalid occurrences = %v (%v), want [1]", f.Invalid, f.Errors)
	}
	if f := c.Inspect([]Field{{"Subject", "s"}}); f.Valid || len(f.Invalid) != 0 {
		t.Fatalf("no stamp: %+v", f)
	}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "hex:414243": "ABC", "base64:QUJD": "ABC"} {
		got, err := ParseKey(in)
		if err != nil || string(got) != want {
			t.Errorf("ParseKey(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseKey("hex:zz"); err == nil {
		t.Error("bad hex accepted")
	}
}

func BenchmarkDerive(b *testing.B) {
	f := facts("<abc@mail.example.org>", "bob@example.net", "carol@example.net")
	for i := 0; i < 17; i++ {
		f.Headers = append(f.Headers, Field{"X-Filler", strings.Repeat("x", 60)})
	}
	b.ReportAllocs()
	for b.Loop() {
		Derive(f)
	}
}
