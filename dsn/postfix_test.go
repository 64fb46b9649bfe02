package dsn_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/internal/mtatest"
)

// TestPostfixRelaysTheNoticeIntact submits a notice to a real Postfix, which
// relays it to a sink: the null sender, the recipient and every part of the
// report arrive as composed. Skipped without root and Postfix (unless
// WASMILTER_E2E=1, see mtatest.Require).
func TestPostfixRelaysTheNoticeIntact(t *testing.T) {
	mtatest.Require(t, mtatest.NeedRoot, "postfix", "postconf")
	sink := mtatest.StartSink(t)
	pf := mtatest.StartPostfix(t, mtatest.PostfixConfig{RelayTo: sink.Addr})

	msg := mustCompose(t, delayNotice())
	s := &dsn.Submitter{Addr: pf.SMTPAddr, HeloName: "mx.example.org", Timeout: 30 * time.Second}
	if err := s.Submit(context.Background(), "alice@example.com", msg); err != nil {
		t.Fatalf("Submit to Postfix: %v\n%s", err, pf.Log())
	}
	got := sink.Wait(t, 1, 60*time.Second)[0]

	if got.From != "" {
		t.Errorf("Postfix relayed MAIL FROM:<%s>, want <>", got.From)
	}
	if len(got.To) != 1 || got.To[0] != "alice@example.com" {
		t.Errorf("Postfix relayed to %v, want [alice@example.com]", got.To)
	}
	sent, relayed := parseNotice(t, msg), parseNotice(t, got.Data)
	if len(relayed.parts) != len(sent.parts) {
		t.Fatalf("%d parts relayed, %d sent", len(relayed.parts), len(sent.parts))
	}
	for i := range sent.parts {
		if relayed.parts[i].contentType != sent.parts[i].contentType || !bytes.Equal(relayed.parts[i].body, sent.parts[i].body) {
			t.Errorf("part %d changed on the way:\n%q\nsent\n%q", i+1, relayed.parts[i].body, sent.parts[i].body)
		}
	}
	if relayed.params["report-type"] != "delivery-status" {
		t.Errorf("relayed report-type %q", relayed.params["report-type"])
	}
	for _, name := range []string{"Message-ID", "Auto-Submitted", "Subject", "From", "To"} {
		if a, b := relayed.header.Get(name), sent.header.Get(name); a != b {
			t.Errorf("%s relayed as %q, sent as %q", name, a, b)
		}
	}
}
