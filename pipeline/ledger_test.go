package pipeline

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// ledgerRig is a pipeline with a real bbolt ledger and a clock the test moves.
type ledgerRig struct {
	p      *Pipeline
	ledger retry.Ledger
	now    time.Time
}

func newLedgerRig(t *testing.T, acceptOnStoreError bool) *ledgerRig {
	t.Helper()
	return newLedgerRigWith(t, func(o *Options) { o.AcceptOnStoreError = acceptOnStoreError })
}

// newLedgerRigWith is the rig on a fresh bbolt ledger and the rig's clock,
// its pipeline options changed by tune.
func newLedgerRigWith(t *testing.T, tune func(*Options)) *ledgerRig {
	t.Helper()
	r := &ledgerRig{now: fixedNow}
	clock := func() time.Time { return r.now }
	l, err := retry.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), retry.BoltOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r.ledger = l
	opts := Options{Chain: sharedChain(t), Stamps: unsignedCodec, Ledger: l,
		Policy: retry.Policy{MaxAge: 24 * time.Hour}, Clock: clock, Logger: slog.New(slog.DiscardHandler)}
	tune(&opts)
	r.p = New(opts)
	return r
}

// send runs one message on a fresh connection.
func (r *ledgerRig) send(t *testing.T, extra ...[2]string) (milter.Reply, []milter.Modification) {
	t.Helper()
	s := r.p.NewOfflineSession(macros{"i": "Q" + r.now.Format("150405")})
	defer s.Close()
	s.Connect(milter.ConnInfo{Family: "inet", Addr: "198.51.100.7"})
	return msg{from: "alice@example.org", rcpts: []string{"bob@example.net"},
		headers: plainHeaders("ledger", extra...)}.send(t, s)
}

var deferMe = [2]string{"X-Scripted", "tempfail"}

func identityOfLedgerMessage() stamp.Identity {
	return stamp.Derive(stamp.Facts{Sender: "alice@example.org", Recipients: []string{"bob@example.net"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<ledger@example.org>"}}})
}

func TestDeferralIsRecordedAndTheRetryGetsTheFirstStamp(t *testing.T) {
	r := newLedgerRig(t, false)
	first := r.now
	reply, _ := r.send(t, deferMe)
	if reply.Action != milter.TempFail || reply.Code != 451 {
		t.Fatalf("first attempt: %+v, want the plugin's 451", reply)
	}
	id := identityOfLedgerMessage()
	rec, err := r.ledger.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("the deferral is not in the ledger after the 4xx: %v", err)
	}
	if rec.State != retry.Deferred || rec.Attempts != 1 || !rec.FirstSeen.Equal(first) || rec.History[0].Reason.Code != 451 {
		t.Fatalf("record after the deferral: %+v", rec)
	}

	// The retry, ten minutes later, passes and carries the stamp minted at the first attempt.
	r.now = first.Add(10 * time.Minute)
	reply, mods := r.send(t)
	if reply.Action != milter.Continue {
		t.Fatalf("retry: %+v", reply)
	}
	value, n := header(mods, stamp.DefaultHeader)
	want := unsignedCodec.Format(stamp.Stamp{ID: id, FirstSeen: first})
	if n != 1 || value != want {
		t.Fatalf("retry stamp %q, want the first attempt's %q", value, want)
	}
	if v, _ := header(mods, "X-Rcpts"); v == "" {
		t.Fatal("the plugins did not run on the retry")
	}
	rec, _ = r.ledger.Get(context.Background(), id)
	if rec.State != retry.Passed || rec.Attempts != 2 {
		t.Fatalf("record after the pass: %+v", rec)
	}
}

func TestExpiredMessageGetsAPermanentAnswer(t *testing.T) {
	r := newLedgerRig(t, false)
	r.send(t, deferMe)
	r.now = r.now.Add(25 * time.Hour) // past max_age
	reply, _ := r.send(t, deferMe)
	if reply.Action != milter.Reject || reply.Code != 550 || reply.Enhanced != "5.4.7" || !strings.Contains(reply.Text, "expired") {
		t.Fatalf("attempt past max_age: %+v, want 550 5.4.7 'expired'", reply)
	}
	rec, _ := r.ledger.Get(context.Background(), identityOfLedgerMessage())
	if rec.State != retry.Expired {
		t.Fatalf("record state %s, want expired", rec.State)
	}
	// Every later attempt hears the same, not another 4xx.
	r.now = r.now.Add(time.Hour)
	if again, _ := r.send(t); again.Code != 550 || again.Text != reply.Text {
		t.Fatalf("later attempt: %+v, want the same 550", again)
	}
}

func TestReleasedMessagePassesDespiteADeferringPlugin(t *testing.T) {
	r := newLedgerRig(t, false)
	r.send(t, deferMe)
	if _, err := r.ledger.Release(context.Background(), identityOfLedgerMessage()); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(time.Minute)
	reply, mods := r.send(t, deferMe)
	if reply.Action != milter.Continue {
		t.Fatalf("released message: %+v, want it to pass", reply)
	}
	if _, n := header(mods, stamp.DefaultHeader); n != 1 {
		t.Fatal("the released message was not stamped: later hooks did not run")
	}
}

func TestHeldMessageIsQuarantined(t *testing.T) {
	r := newLedgerRig(t, false)
	r.send(t, deferMe)
	if _, err := r.ledger.Hold(context.Background(), identityOfLedgerMessage()); err != nil {
		t.Fatal(err)
	}
	reply, mods := r.send(t)
	var quarantined bool
	for _, m := range mods {
		quarantined = quarantined || m.Kind == milter.Quarantine
	}
	if reply.Action != milter.Continue || !quarantined {
		t.Fatalf("held message: %+v %+v, want continue with a quarantine", reply, mods)
	}
}

func TestStoreErrorPolicy(t *testing.T) {
	for _, accept := range []bool{false, true} {
		r := newLedgerRig(t, accept)
		r.ledger.Close() // every read and write now fails
		reply, _ := r.send(t)
		if accept && reply.Action != milter.Continue {
			t.Errorf("on_store_error accept: %+v, want the message through", reply)
		}
		if !accept && (reply.Action != milter.TempFail || reply.Code != 451 || reply.Enhanced != "4.3.0") {
			t.Errorf("on_store_error tempfail: %+v, want 451 4.3.0", reply)
		}
	}
}

func TestDeferralAtRcptIsNotRecorded(t *testing.T) {
	r := newLedgerRig(t, false)
	s := r.p.NewOfflineSession(macros{})
	defer s.Close()
	s.Mail("alice@example.org", nil)
	if reply := s.Rcpt("defer@example.net", nil); reply.Action != milter.TempFail {
		t.Fatalf("rcpt: %+v", reply)
	}
	recs, err := r.ledger.List(context.Background(), retry.Filter{})
	if err != nil || len(recs) != 0 {
		t.Fatalf("a recipient deferral (no identity yet) reached the ledger: %v %v", recs, err)
	}
}
