package notify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/notify"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/stamp"
)

// These tests run the notifier on a real bbolt ledger with the embedded
// delaynotify policy through the real plugin host; only the relay is a
// recording fake (the end-to-end tests use a real Postfix).

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// relay records submitted notices; fail, when set, answers each submission.
type relay struct {
	mu   sync.Mutex
	got  []submitted
	fail func(to string) error
}

type submitted struct {
	to  string
	msg []byte
}

func (r *relay) Submit(_ context.Context, to string, msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(to); err != nil {
			return err
		}
	}
	r.got = append(r.got, submitted{to, msg})
	return nil
}

func (r *relay) notices() []submitted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]submitted(nil), r.got...)
}

type fixture struct {
	t      *testing.T
	ledger *retry.Bolt
	clock  *manualclock.Clock
	relay  *relay
	policy *plugins.Chain
	kv     *cache.Cache
}

var (
	hostOnce sync.Once
	host     *plugins.Host
	hostErr  error
)

func sharedHost(t *testing.T) *plugins.Host {
	hostOnce.Do(func() {
		host, hostErr = plugins.NewHost(context.Background(), plugins.HostConfig{Logger: quiet(),
			CompilationCacheDir: wasmtest.CompilationCacheDir(t)})
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return host
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T, config ...abi.ConfigEntry) *fixture {
	t.Helper()
	c := manualclock.New(t0)
	l, err := retry.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), retry.BoltOptions{Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	mod, _ := builtin.Lookup("delaynotify")
	cfg := append([]abi.ConfigEntry{{Key: "local_domains", Values: []string{"example.org"}},
		{Key: "notify_after", Values: []string{"30m", "4h"}}, {Key: "max_age", Values: []string{"2d"}}}, config...)
	p, err := sharedHost(t).Load(context.Background(), plugins.Spec{Name: "delaynotify", Source: "builtin:delaynotify",
		Wasm: mod.Wasm, Env: mod.Env, Config: cfg, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	kv, err := cache.New(cache.Config{MaxEntries: 100, MaxBytes: 1 << 20, TTL: time.Hour, KVShare: 0.5, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ledger: l, clock: c, relay: &relay{}, policy: plugins.NewChain(p), kv: kv}
}

func (f *fixture) notifier(node string, change ...func(*notify.Options)) *notify.Notifier {
	f.t.Helper()
	opts := notify.Options{Ledger: f.ledger, Policy: f.policy, Sender: f.relay, Node: node,
		ReportingMTA: "mx.example.org", Retry: retry.Policy{MaxAge: 2 * 24 * time.Hour},
		Counter: f.kv, Clock: f.clock.Now, Logger: quiet()}
	for _, c := range change {
		c(&opts)
	}
	n, err := notify.New(opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

var nextID int

// deferred records a deferral first seen at t0 and returns its identity.
func (f *fixture) deferred(sender string, headers ...retry.Header) stamp.Identity {
	f.t.Helper()
	nextID++
	id := stamp.Derive(stamp.Facts{Sender: sender, Recipients: []string{"bob@example.net"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<" + strings.Repeat("x", nextID) + "@example.org>"}}})
	hs := append([]retry.Header{{Name: "Subject", Value: "Quarterly figures"},
		{Name: "Message-ID", Value: "<1@example.org>"}}, headers...)
	_, err := f.ledger.Defer(context.Background(), retry.Deferral{ID: id, FirstSeen: t0, Sender: sender,
		Recipients: []string{"bob@example.net"}, Headers: hs,
		Attempt: retry.Attempt{At: t0, QueueID: "4ABC", ClientIP: "192.0.2.1",
			Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}}})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

// visit runs one visit of id at the given age.
func (f *fixture) visit(n *notify.Notifier, id stamp.Identity, age time.Duration) error {
	f.t.Helper()
	f.clock.Set(t0.Add(age))
	rec, err := f.ledger.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return n.Visit(context.Background(), f.clock.Now(), rec)
}

func (f *fixture) record(id stamp.Identity) retry.Record {
	rec, err := f.ledger.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// report parses a notice: its header, the delivery-status fields of its one
// recipient and its original header part.
func report(t *testing.T, msg []byte) (h message.Header, status textproto.Header, original textproto.Header) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("notice does not parse: %v", err)
	}
	if mt, params, _ := e.Header.ContentType(); mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("notice Content-Type %s %v", mt, params)
	}
	mr := e.MultipartReader()
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p.Body)
		parts = append(parts, b)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	groups := bytes.SplitN(parts[1], []byte("\r\n\r\n"), 2)
	status, err = textproto.ReadHeader(bufioOf(append(groups[1], "\r\n"...)))
	if err != nil {
		t.Fatalf("per-recipient fields: %v\n%s", err, parts[1])
	}
	original, err = textproto.ReadHeader(bufioOf(append(parts[2], "\r\n"...)))
	if err != nil {
		t.Fatalf("original header part: %v", err)
	}
	return e.Header, status, original
}

func TestNoticeOncePerStep(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1")
	id := f.deferred("alice@example.org")

	if err := f.visit(n, id, 29*time.Minute); err != nil || len(f.relay.notices()) != 0 {
		t.Fatalf("before the first step: %v, %d notices", err, len(f.relay.notices()))
	}
	for range 3 { // the sweeper comes back; the step is sent once
		if err := f.visit(n, id, 31*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	got := f.relay.notices()
	if len(got) != 1 {
		t.Fatalf("%d notices for step 1, want 1", len(got))
	}
	if got[0].to != "alice@example.org" {
		t.Errorf("notice to %q", got[0].to)
	}
	h, status, original := report(t, got[0].msg)
	if status.Get("Action") != "delayed" || status.Get("Status") != "4.7.1" ||
		status.Get("Final-Recipient") != "rfc822; bob@example.net" ||
		!strings.Contains(status.Get("Diagnostic-Code"), "451 4.7.1 Greylisted") ||
		status.Get("Will-Retry-Until") != "Thu, 03 Dec 2026 09:00:00 +0000" {
		t.Errorf("delivery status: %v", status.Map())
	}
	if original.Get("Subject") != "Quarterly figures" {
		t.Errorf("original header part lacks the Subject: %v", original.Map())
	}
	wantID := retry.NoticeMessageID(id, 1, "mx.example.org")
	if h.Get("Message-Id") != wantID || h.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("Message-Id %q (want %q), Auto-Submitted %q", h.Get("Message-Id"), wantID, h.Get("Auto-Submitted"))
	}
	rec := f.record(id)
	if rec.DelayStepsDone() != 1 || len(rec.Notices) != 1 || rec.State != retry.Deferred {
		t.Errorf("record after step 1: steps %d, notices %+v, state %s", rec.DelayStepsDone(), rec.Notices, rec.State)
	}

	if err := f.visit(n, id, 4*time.Hour+time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := f.relay.notices(); len(got) != 2 {
		t.Fatalf("%d notices after step 2 was due, want 2", len(got))
	}
	if err := f.visit(n, id, 24*time.Hour); err != nil || len(f.relay.notices()) != 2 {
		t.Fatalf("after every step: %v, %d notices", err, len(f.relay.notices()))
	}
}

func TestGuardsHoldWhateverThePolicySays(t *testing.T) {
	f := newFixture(t, abi.ConfigEntry{Key: "local_domains", Values: []string{"example.org"}})
	n := f.notifier("mx1")
	// The shipped policy refuses these too; the guards are tested with a
	// policy that notifies everyone in TestGuardsOverrideAPolicy.
	for name, id := range map[string]stamp.Identity{
		"null sender":    f.deferred(""),
		"mailer-daemon":  f.deferred("MAILER-DAEMON@example.org"),
		"auto-submitted": f.deferred("alice@example.org", retry.Header{Name: "Auto-Submitted", Value: "auto-replied"}),
		"report": f.deferred("alice@example.org", retry.Header{Name: "Content-Type",
			Value: "multipart/report; report-type=delivery-status; boundary=x"}),
	} {
		if err := f.visit(n, id, time.Hour); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if rec := f.record(id); len(rec.Outbox) != 0 {
			t.Errorf("%s: outbox %+v, want nothing claimed", name, rec.Outbox)
		}
	}
	if got := f.relay.notices(); len(got) != 0 {
		t.Fatalf("%d notices sent past the guards", len(got))
	}
}

// TestGuardsOverrideAPolicy: a policy that asks for a notice about every
// message, every time, is still held to the host's guards and to one
// notice per step.
func TestGuardsOverrideAPolicy(t *testing.T) {
	f := newFixture(t)
	p, err := sharedHost(t).Load(context.Background(), plugins.Spec{Name: "notifyall", Source: "notifyall",
		Wasm: wasmtest.BuildGo(t, "./notify/testdata/notifyall"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	f.policy = plugins.NewChain(p)
	n := f.notifier("mx1")
	refused := map[string]stamp.Identity{
		"null sender":    f.deferred(""),
		"mailer-daemon":  f.deferred("MAILER-DAEMON@example.org"),
		"auto-submitted": f.deferred("alice@example.org", retry.Header{Name: "Auto-Submitted", Value: "auto-replied"}),
		"report": f.deferred("alice@example.org", retry.Header{Name: "Content-Type",
			Value: "multipart/report; report-type=delivery-status; boundary=x"}),
	}
	stranger := f.deferred("someone@elsewhere.example") // the policy's business, not a guard's
	for range 2 {
		for name, id := range refused {
			if err := f.visit(n, id, time.Hour); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if rec := f.record(id); len(rec.Outbox) != 0 {
				t.Errorf("%s: outbox %+v, want nothing claimed", name, rec.Outbox)
			}
		}
		if err := f.visit(n, stranger, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// The policy asked twice for the stranger: step 1, then step 2.
	got := f.relay.notices()
	if len(got) != 2 || got[0].to != "someone@elsewhere.example" {
		t.Fatalf("%d notices past the guards, want 2 to the stranger", len(got))
	}
}

func TestTemporaryFailureIsRetriedLater(t *testing.T) {
	f := newFixture(t)
	down := true
	f.relay.fail = func(string) error {
		if down {
			return &dsn.SubmitError{Addr: "127.0.0.1:25", Op: "connect", Temporary: true, Err: errors.New("connection refused")}
		}
		return nil
	}
	n := f.notifier("mx1", func(o *notify.Options) { o.RetryAfter = 10 * time.Minute })
	id := f.deferred("alice@example.org")
	if err := f.visit(n, id, time.Hour); err == nil {
		t.Fatal("a failed send was not reported")
	}
	e, _ := f.record(id).OutboxEntry(1)
	if e.Status != retry.NoticePending || !strings.Contains(e.Error, "connection refused") {
		t.Fatalf("after a temporary failure: %+v", e)
	}
	down = false
	if err := f.visit(n, id, time.Hour+5*time.Minute); err != nil || len(f.relay.notices()) != 0 {
		t.Fatalf("before retry_after: %v, %d notices", err, len(f.relay.notices()))
	}
	if err := f.visit(n, id, time.Hour+11*time.Minute); err != nil || len(f.relay.notices()) != 1 {
		t.Fatalf("after retry_after: %v, %d notices", err, len(f.relay.notices()))
	}
	if e, _ := f.record(id).OutboxEntry(1); e.Status != retry.NoticeSent || e.Claims != 2 {
		t.Errorf("after the retry: %+v", e)
	}
}

func TestPermanentFailureSettlesTheStep(t *testing.T) {
	f := newFixture(t)
	f.relay.fail = func(string) error {
		return &dsn.SubmitError{Addr: "127.0.0.1:25", Op: "RCPT TO", Code: 550, Enhanced: "5.1.1", Message: "no such user"}
	}
	n := f.notifier("mx1")
	id := f.deferred("alice@example.org")
	if err := f.visit(n, id, time.Hour); err != nil {
		t.Fatal(err)
	}
	rec := f.record(id)
	if e, _ := rec.OutboxEntry(1); e.Status != retry.NoticeFailed || !strings.Contains(e.Error, "550") {
		t.Fatalf("after a 5xx: %+v", e)
	}
	if rec.DelayStepsDone() != 1 {
		t.Errorf("a refused step is not counted as done: %d", rec.DelayStepsDone())
	}
	f.relay.fail = nil
	if err := f.visit(n, id, 2*time.Hour); err != nil || len(f.relay.notices()) != 0 {
		t.Fatalf("a refused step was sent again: %v, %d", err, len(f.relay.notices()))
	}
}

func TestRateLimitSuppresses(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1", func(o *notify.Options) { o.RateLimit, o.RateWindow = 2, time.Hour })
	var ids []stamp.Identity
	for range 4 {
		ids = append(ids, f.deferred("alice@example.org"))
	}
	other := f.deferred("bob@example.org")
	for _, id := range append(ids, other) {
		if err := f.visit(n, id, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(f.relay.notices()); got != 3 {
		t.Fatalf("%d notices, want 2 to alice and 1 to bob", got)
	}
	suppressed := 0
	for _, id := range ids {
		if e, _ := f.record(id).OutboxEntry(1); e.Status == retry.NoticeSuppressed {
			suppressed++
		}
	}
	if suppressed != 2 || n.Stats().Suppressed != 2 {
		t.Errorf("%d steps suppressed (stats %+v), want 2", suppressed, n.Stats())
	}
}

func TestExpireSendsTheFinalNoticeThenExpires(t *testing.T) {
	f := newFixture(t)
	down := true
	f.relay.fail = func(string) error {
		if down {
			return &dsn.SubmitError{Addr: "127.0.0.1:25", Op: "connect", Temporary: true, Err: errors.New("refused")}
		}
		return nil
	}
	n := f.notifier("mx1", func(o *notify.Options) { o.RetryAfter = time.Minute })
	id := f.deferred("alice@example.org")
	if err := f.visit(n, id, 49*time.Hour); err == nil {
		t.Fatal("the failed final notice was not reported")
	}
	if rec := f.record(id); rec.State != retry.Deferred {
		t.Fatalf("expired before its final notice went out: %s", rec.State)
	}
	down = false
	if err := f.visit(n, id, 49*time.Hour+2*time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := f.record(id)
	if rec.State != retry.Expired || rec.ExpiredReason.Code != 550 || rec.ExpiredReason.Enhanced != "5.4.7" {
		t.Fatalf("after the final notice: state %s, reason %+v", rec.State, rec.ExpiredReason)
	}
	got := f.relay.notices()
	if len(got) != 1 {
		t.Fatalf("%d notices, want the final one", len(got))
	}
	h, status, _ := report(t, got[0].msg)
	if status.Get("Action") != "failed" || status.Get("Status") != "5.4.7" || h.Get("Subject") != dsn.SubjectFailed {
		t.Errorf("final notice: %v, subject %q", status.Map(), h.Get("Subject"))
	}
}

func TestExpireWithoutNoticeForStrangers(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1")
	id := f.deferred("someone@elsewhere.example")
	if err := f.visit(n, id, 49*time.Hour); err != nil {
		t.Fatal(err)
	}
	if rec := f.record(id); rec.State != retry.Expired || len(rec.Outbox) != 0 || len(f.relay.notices()) != 0 {
		t.Fatalf("state %s, outbox %+v, %d notices", rec.State, rec.Outbox, len(f.relay.notices()))
	}
}

func TestDisabledStillExpires(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1", func(o *notify.Options) { o.Disabled = true })
	id := f.deferred("alice@example.org")
	if err := f.visit(n, id, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := f.visit(n, id, 49*time.Hour); err != nil {
		t.Fatal(err)
	}
	if rec := f.record(id); rec.State != retry.Expired || len(f.relay.notices()) != 0 {
		t.Fatalf("disabled: state %s, %d notices", rec.State, len(f.relay.notices()))
	}
}

func TestClearedNoticeAfterPass(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1", func(o *notify.Options) { o.Cleared = true })
	if got := n.SweptStates(); len(got) != 3 {
		t.Fatalf("swept states %v, want passed too", got)
	}
	told := f.deferred("alice@example.org")
	untold := f.deferred("alice@example.org")
	if err := f.visit(n, told, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, id := range []stamp.Identity{told, untold} {
		if _, err := f.ledger.Pass(context.Background(), id, retry.Attempt{At: t0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		for _, id := range []stamp.Identity{told, untold} {
			if err := f.visit(n, id, 3*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := f.relay.notices()
	if len(got) != 2 {
		t.Fatalf("%d notices, want the delay and one cleared notice", len(got))
	}
	h, status, _ := report(t, got[1].msg)
	if status.Get("Action") != "relayed" || h.Get("Subject") != dsn.SubjectCleared {
		t.Errorf("cleared notice: %v, subject %q", status.Map(), h.Get("Subject"))
	}
}

// TestTwoNodesSendEachStepOnce: two nodes visit the same records at the
// same time; each step goes out once.
func TestTwoNodesSendEachStepOnce(t *testing.T) {
	f := newFixture(t)
	nodes := []*notify.Notifier{f.notifier("mx1"), f.notifier("mx2")}
	var ids []stamp.Identity
	for range 20 {
		ids = append(ids, f.deferred("alice@example.org"))
	}
	f.clock.Set(t0.Add(time.Hour))
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for _, id := range ids {
				rec, err := f.ledger.Get(context.Background(), id)
				if err == nil {
					err = n.Visit(context.Background(), f.clock.Now(), rec)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := len(f.relay.notices()); got != len(ids) {
		t.Fatalf("%d notices for %d records", got, len(ids))
	}
}

// TestSweeperDrivesTheNotifier: the real sweeper over the ledger with the
// notifier as its visit.
func TestSweeperDrivesTheNotifier(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1")
	for range 5 {
		f.deferred("alice@example.org")
	}
	f.deferred("") // never told
	f.clock.Set(t0.Add(time.Hour))
	sw := &retry.Sweeper{Ledger: f.ledger, Clock: f.clock.Now, States: n.SweptStates()}
	st, err := sw.Sweep(context.Background(), n.Visit)
	if err != nil || st.Visited != 6 {
		t.Fatalf("sweep: %+v, %v", st, err)
	}
	if got := len(f.relay.notices()); got != 5 || n.Stats().Sent != 5 {
		t.Fatalf("%d notices (stats %+v), want 5", got, n.Stats())
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	f := newFixture(t)
	base := notify.Options{Ledger: f.ledger, Policy: f.policy, Sender: f.relay, Node: "mx1", ReportingMTA: "mx.example.org"}
	for name, change := range map[string]func(*notify.Options){
		"no ledger":            func(o *notify.Options) { o.Ledger = nil },
		"no policy":            func(o *notify.Options) { o.Policy = nil },
		"policy without delay": func(o *notify.Options) { o.Policy = plugins.NewChain() },
		"no sender":            func(o *notify.Options) { o.Sender = nil },
		"no node":              func(o *notify.Options) { o.Node = "" },
		"no reporting MTA":     func(o *notify.Options) { o.ReportingMTA = "" },
		"rate without counter": func(o *notify.Options) { o.RateLimit, o.RateWindow = 5, time.Hour },
		"short lease":          func(o *notify.Options) { o.Lease = time.Second },
	} {
		o := base
		change(&o)
		if _, err := notify.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := notify.New(base); err != nil {
		t.Errorf("complete options refused: %v", err)
	}
}

// TestAuthenticatedSenderIsTold: the login name kept in the record reaches
// the policy as {auth_authen}, and the shipped policy tells a sender who
// authenticated even from a domain that is not local.
func TestAuthenticatedSenderIsTold(t *testing.T) {
	f := newFixture(t)
	n := f.notifier("mx1")
	stranger := f.deferred("someone@elsewhere.example")
	nextID++
	authID := stamp.Derive(stamp.Facts{Sender: "roamer@elsewhere.example", Recipients: []string{"bob@example.net"}})
	_, err := f.ledger.Defer(context.Background(), retry.Deferral{ID: authID, FirstSeen: t0,
		Sender: "roamer@elsewhere.example", Recipients: []string{"bob@example.net"}, AuthUser: "roamer",
		Attempt: retry.Attempt{At: t0, Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []stamp.Identity{stranger, authID} {
		if err := f.visit(n, id, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	got := f.relay.notices()
	if len(got) != 1 || got[0].to != "roamer@elsewhere.example" {
		t.Fatalf("notices %v, want one to the authenticated sender", got)
	}
}
