package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/plugins/builtin"
	"github.com/wasmilter/wasmilter/stamp"
)

type macros map[string]string

func (m macros) Macro(name string) (string, bool) { v, ok := m[strings.Trim(name, "{}")]; return v, ok }

var fixedNow = time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)

// newPipeline returns a pipeline running the scripted test plugin followed
// by the builtin stamp, without a ledger. The plugins are compiled once and
// shared: a chain holds no per-message state.
func newPipeline(t *testing.T) *Pipeline {
	t.Helper()
	return New(Options{Chain: sharedChain(t), Stamps: unsignedCodec, Clock: func() time.Time { return fixedNow },
		Logger: slog.New(slog.DiscardHandler)})
}

var unsignedCodec, _ = stamp.NewCodec("", nil)

var shared struct {
	once  sync.Once
	chain *plugins.Chain
	err   error
}

func sharedChain(t testing.TB) *plugins.Chain {
	t.Helper()
	shared.once.Do(func() { shared.chain, shared.err = loadChain(t) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.chain
}

func loadChain(t testing.TB) (*plugins.Chain, error) {
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Clock: func() time.Time { return fixedNow }})
	if err != nil {
		return nil, err
	}
	stamp, ok := builtin.Lookup("stamp")
	if !ok {
		return nil, errors.New("no builtin stamp")
	}
	var loaded []*plugins.Plugin
	for _, spec := range []plugins.Spec{
		{Name: "scripted", Source: "scripted", Wasm: wasmtest.BuildGo(t, "./testdata/plugins/scripted"), Timeout: 5 * time.Second},
		{Name: "stamp", Source: "builtin:stamp", Wasm: stamp.Wasm, Env: stamp.Env, Timeout: 5 * time.Second},
	} {
		p, err := host.Load(ctx, spec)
		if err != nil {
			return nil, err
		}
		loaded = append(loaded, p)
	}
	return plugins.NewChain(loaded...), nil
}

// msg drives one message through a session and returns the final reply and changes.
type msg struct {
	from    string
	rcpts   []string
	headers [][2]string
}

func (m msg) send(t testing.TB, s milter.Session) (milter.Reply, []milter.Modification) {
	t.Helper()
	if r := s.Mail(m.from, nil); r.Action != milter.Continue {
		return r, nil
	}
	for _, rc := range m.rcpts {
		s.Rcpt(rc, nil)
	}
	for _, h := range m.headers {
		s.Header(h[0], h[1])
	}
	if r := s.EndOfHeaders(); r.Action != milter.Continue {
		return r, nil
	}
	return s.EndOfMessage()
}

func header(mods []milter.Modification, name string) (string, int) {
	value, n := "", 0
	for _, m := range mods {
		if m.Kind == milter.AddHeader && strings.EqualFold(m.Name, name) {
			value, n = m.Value, n+1
		}
	}
	return value, n
}

func plainHeaders(id string, extra ...[2]string) [][2]string {
	return append([][2]string{{"From", "a@example.org"}, {"Subject", "s"}, {"Message-ID", "<" + id + "@example.org>"}}, extra...)
}

func TestNeedsFollowHooks(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{})
	n := s.Needs()
	if !n.Connect || !n.Helo || n.Body || !n.Mail || !n.Rcpt || !n.Headers {
		t.Fatalf("needs %+v: want everything but the body (no plugin reads it)", n)
	}
}

func TestStateDoesNotLeakBetweenMessages(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{"i": "Q1"})
	defer s.Close()
	s.Connect(milter.ConnInfo{Host: "client.example.org", Family: "inet", Addr: "192.0.2.1", Port: 40000})
	first := msg{from: "a@example.org", rcpts: []string{"b@example.net"},
		headers: plainHeaders("one", [2]string{"X-Scripted", "discard"}, [2]string{"X-Extra", "1"})}
	if r, _ := first.send(t, s); r.Action != milter.Discard {
		t.Fatalf("first message: %+v, want discard", r)
	}
	// The MTA aborts the discarded message's remains; the next one on the same connection is clean.
	s.Abort()
	second := msg{from: "a@example.org", rcpts: []string{"c@example.net"}, headers: plainHeaders("two")}
	r, mods := second.send(t, s)
	if r.Action != milter.Continue {
		t.Fatalf("second message: %+v, want continue", r)
	}
	if v, _ := header(mods, "X-Header-Count"); v != "3" {
		t.Errorf("second message's plugin saw %s headers, want its own 3", v)
	}
	if v, _ := header(mods, "X-Rcpts"); v != "c@example.net" {
		t.Errorf("second message's recipients %q leaked from the first", v)
	}
	if _, n := header(mods, stamp.DefaultHeader); n != 1 {
		t.Errorf("%d stamp headers, want 1", n)
	}
}

func TestRecipientVerdictsApplyToThatRecipientOnly(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{})
	defer s.Close()
	s.Mail("a@example.org", nil)
	if r := s.Rcpt("ok@example.net", nil); r.Action != milter.Continue {
		t.Fatalf("ok rcpt: %+v", r)
	}
	if r := s.Rcpt("reject@example.net", nil); r.Action != milter.Reject || r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Fatalf("reject rcpt: %+v", r)
	}
	if r := s.Rcpt("defer@example.net", nil); r.Action != milter.TempFail || r.Code != 450 {
		t.Fatalf("defer rcpt: %+v", r)
	}
	for _, h := range plainHeaders("rcpts") {
		s.Header(h[0], h[1])
	}
	s.EndOfHeaders()
	_, mods := s.EndOfMessage()
	if v, _ := header(mods, "X-Rcpts"); v != "ok@example.net" {
		t.Fatalf("recipients at end of message %q, want only the accepted one", v)
	}
	// The identity (stamp id) counts only the recipient that will get the message.
	v, _ := header(mods, stamp.DefaultHeader)
	want := stamp.Derive(stamp.Facts{Sender: "a@example.org", Recipients: []string{"ok@example.net"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<rcpts@example.org>"}}})
	if !strings.Contains(v, "id="+want.String()) {
		t.Fatalf("stamp %q, want id %s", v, want)
	}
	if !strings.Contains(v, "t=2026-11-22T07:00:00Z") {
		t.Errorf("stamp %q does not carry the clock's time", v)
	}
}

func TestAcceptEndsPolicyButKeepsGatheredChanges(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{})
	defer s.Close()
	m := msg{from: "accept@example.org", rcpts: []string{"reject@example.net"}, headers: plainHeaders("acc",
		[2]string{"X-Scripted", "reject"})}
	// The accept at MAIL comes with a header to add, so the MTA is told to
	// continue; no later hook of any plugin runs (the reject recipient and
	// the reject header are not acted on; the stamp plugin is not called).
	if r := s.Mail(m.from, nil); r.Action != milter.Continue {
		t.Fatalf("accept with pending changes answered %+v, want continue", r)
	}
	if r := s.Rcpt(m.rcpts[0], nil); r.Action != milter.Continue {
		t.Fatalf("rcpt after accept: %+v", r)
	}
	for _, h := range m.headers {
		s.Header(h[0], h[1])
	}
	if r := s.EndOfHeaders(); r.Action != milter.Continue {
		t.Fatalf("headers after accept: %+v", r)
	}
	r, mods := s.EndOfMessage()
	if r.Action != milter.Accept {
		t.Fatalf("end of message %+v, want accept", r)
	}
	if v, _ := header(mods, "X-Accepted-At"); v != "mail" {
		t.Fatalf("the header added with the accept is missing: %+v", mods)
	}
	if _, n := header(mods, stamp.DefaultHeader); n != 0 {
		t.Fatalf("a later plugin ran after accept: %+v", mods)
	}
}

func TestChangesFromEarlyHooksArriveAtEndOfMessage(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{})
	defer s.Close()
	r, mods := msg{from: "early@example.org", rcpts: []string{"b@example.net"}, headers: plainHeaders("early")}.send(t, s)
	if r.Action != milter.Continue {
		t.Fatalf("%+v", r)
	}
	var order []string
	for _, m := range mods {
		order = append(order, m.Name)
	}
	if got := strings.Join(order, ","); got != "X-Mail-Stage,X-Rcpts,X-Header-Count,"+stamp.DefaultHeader {
		t.Fatalf("changes in order %s: want mail-stage first, then end-of-message ones in plugin order", got)
	}
}

func TestHeaderRejectStopsTheMessage(t *testing.T) {
	s := newPipeline(t).NewOfflineSession(macros{})
	defer s.Close()
	r, mods := msg{from: "a@example.org", rcpts: []string{"b@example.net"},
		headers: plainHeaders("rej", [2]string{"X-Scripted", "reject"})}.send(t, s)
	if r.Action != milter.Reject || r.Code != 554 || r.Text != "Scripted rejection" || mods != nil {
		t.Fatalf("got %+v %+v, want the plugin's 554 and no changes", r, mods)
	}
}
