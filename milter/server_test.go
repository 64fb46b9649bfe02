package milter

import (
	"fmt"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"
)

// TestNegotiationWithClient drives option negotiation from go-milter's
// client (protocol version 6) with Postfix's full offer.
func TestNegotiationWithClient(t *testing.T) {
	all := gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo |
		gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH
	cases := []struct {
		name        string
		needs       Needs
		wantProto   gomilter.OptProtocol
		wantActions gomilter.OptAction
	}{
		{
			name:        "everything",
			needs:       allNeeds(),
			wantProto:   gomilter.OptNoHeaderReply | gomilter.OptNoUnknown,
			wantActions: allNeeds().Actions,
		},
		{
			name:      "nothing",
			needs:     Needs{},
			wantProto: all | gomilter.OptNoUnknown,
		},
		{
			name:        "headers only",
			needs:       Needs{Headers: true, Actions: gomilter.OptAddHeader},
			wantProto:   gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo | gomilter.OptNoBody | gomilter.OptNoHeaderReply | gomilter.OptNoEOH | gomilter.OptNoUnknown,
			wantActions: gomilter.OptAddHeader,
		},
		{
			name:        "envelope and body",
			needs:       Needs{Mail: true, Rcpt: true, Body: true, Actions: gomilter.OptSetSymList | gomilter.OptChangeBody},
			wantProto:   gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoUnknown,
			wantActions: gomilter.OptSetSymList | gomilter.OptChangeBody,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBackend(tc.needs)
			ts := startServer(t, b)
			s := ts.client(t, fullActions, fullProtocol)
			defer s.Close()
			if s.ProtocolOpts != tc.wantProto {
				t.Errorf("protocol %#x, want %#x", uint32(s.ProtocolOpts), uint32(tc.wantProto))
			}
			if s.ActionOpts != tc.wantActions {
				t.Errorf("actions %#x, want %#x", uint32(s.ActionOpts), uint32(tc.wantActions))
			}
			if s.ProtocolOpts&(gomilter.OptNoData|gomilter.OptNoDataReply) != 0 {
				t.Error("over TCP, DATA must never be negotiated away")
			}
		})
	}
}

// quiet is what the pipeline asks for with plugins that hook only the
// headers and the message: every stage, the body not, and no answer
// before end of header.
var quiet = Needs{Connect: true, Helo: true, Mail: true, Rcpt: true, Headers: true,
	AlwaysContinue: StageConnect | StageHelo | StageMail | StageRcpt}

// TestNegotiationHonoursOffer: nothing outside the MTA's offer is
// requested, whatever the session needs.
func TestNegotiationHonoursOffer(t *testing.T) {
	cases := []struct {
		offer optneg
		needs Needs
		want  optneg
	}{
		{optneg{6, fullActions, fullProtocol}, allNeeds(), optneg{6, allNeeds().Actions, gomilter.OptNoHeaderReply | gomilter.OptNoUnknown}},
		{optneg{7, 0x3f, 0x7f}, Needs{}, optneg{6, 0, 0x7f}},
		{optneg{2, gomilter.OptAddHeader, 0}, allNeeds(), optneg{2, gomilter.OptAddHeader, 0}},
		{optneg{2, 0x3f, 0x7f}, Needs{Headers: true}, optneg{2, 0, 0x7f &^ gomilter.OptNoHeaders}},
		{optneg{4, 0x3f, gomilter.OptNoBody | gomilter.OptNoConnect}, Needs{Connect: true}, optneg{4, 0, gomilter.OptNoBody}},
		// A Session that always continues: without quietOK (TCP) it is
		// still answered everywhere.
		{optneg{6, 0, fullProtocol}, quiet, optneg{6, 0, gomilter.OptNoBody | gomilter.OptNoHeaderReply | gomilter.OptNoEOH | gomilter.OptNoUnknown}},
	}
	for _, tc := range cases {
		got := negotiate(tc.offer, tc.needs, false)
		if got != tc.want {
			t.Errorf("negotiate(%+v, %+v) = %+v, want %+v", tc.offer, tc.needs, got, tc.want)
		}
		if got.protocol&^tc.offer.protocol != 0 || got.actions&^tc.offer.actions != 0 {
			t.Errorf("negotiate(%+v) requests bits outside the offer: %+v", tc.offer, got)
		}
	}
}

// TestFullMessageWithClient: macros, envelope, streamed headers, body and
// every modification go-milter's client can parse.
func TestFullMessageWithClient(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.macrosAtEOM = []string{"i", "{i}", "j", "{rcpt_addr}", "{daemon_name}", "{eom_macro}", "missing"}
	mods := []Modification{
		{Kind: AddHeader, Name: "X-Wasmilter", Value: "checked, 100%"},
		{Kind: InsertHeader, Index: 0, Name: "X-First", Value: "top"},
		{Kind: ChangeHeader, Index: 2, Name: "Subject", Value: "changed"},
		{Kind: DeleteHeader, Index: 1, Name: "X-Remove"},
		{Kind: Quarantine, Value: "suspicious"},
		{Kind: ChangeFrom, Value: "new@example.org", Args: []string{"BODY=8BITMIME"}},
		{Kind: AddRcpt, Value: "added@example.org"},
		{Kind: DelRcpt, Value: "b@example.net"},
	}
	b.onEOM = func(*testSession) (Reply, []Modification) { return Reply{Action: Accept}, mods }
	ts := startServer(t, b)
	s := ts.client(t, fullActions, fullProtocol)

	must := func(act *gomilter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if act.Code != gomilter.ActContinue {
			t.Fatalf("action %q, want continue", act.Code)
		}
	}
	mustOK := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustOK(s.Macros(gomilter.CodeConn, "j", "mx.example.org", "{daemon_name}", "smtpd"))
	must(s.Conn("client.example.net", gomilter.FamilyInet, 40000, "192.0.2.7"))
	mustOK(s.Macros(gomilter.CodeHelo, "{tls_version}", "TLSv1.3"))
	must(s.Helo("client.example.net"))
	mustOK(s.Macros(gomilter.CodeMail, "i", "4XyZ", "{mail_addr}", "a@example.net"))
	must(s.Mail("a@example.net", []string{"BODY=8BITMIME", "SIZE=100"}))
	mustOK(s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", "b@example.net"))
	must(s.Rcpt("b@example.net", nil))
	mustOK(s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", "c@example.net"))
	must(s.Rcpt("c@example.net", []string{"NOTIFY=NEVER"}))
	for i := 0; i < 3; i++ {
		must(s.HeaderField("Subject", fmt.Sprintf("hello %d", i)))
	}
	must(s.HeaderEnd())
	must(s.BodyChunk([]byte("line one\r\nline two\r\n")))
	mustOK(s.Macros(gomilter.CodeEOB, "{eom_macro}", "yes"))
	gotMods, act, err := s.End()
	mustOK(err)
	if act.Code != gomilter.ActAccept {
		t.Errorf("final action %q, want accept", act.Code)
	}
	mustOK(s.Close())
	b.log.waitClosed(t, 1)

	wantEvents(t, b.log.snapshot(),
		"new session 1 version=6",
		"connect host=client.example.net family=inet port=40000 addr=192.0.2.7",
		"helo client.example.net",
		`mail <a@example.net> ["BODY=8BITMIME" "SIZE=100"]`,
		`rcpt <b@example.net> []`,
		`rcpt <c@example.net> ["NOTIFY=NEVER"]`,
		"header Subject: hello 0",
		"header Subject: hello 1",
		"header Subject: hello 2",
		"eoh headers=3",
		"body 20",
		"eom headers=3 body=20 macros=[i=4XyZ/true {i}=4XyZ/true j=mx.example.org/true {rcpt_addr}=c@example.net/true {daemon_name}=smtpd/true {eom_macro}=yes/true missing=/false]",
		"close 1",
	)

	want := []gomilter.ModifyAction{
		{Code: gomilter.ActAddHeader, HeaderName: "X-Wasmilter", HeaderValue: "checked, 100%"},
		{Code: gomilter.ActInsertHeader, HeaderIndex: 0, HeaderName: "X-First", HeaderValue: "top"},
		{Code: gomilter.ActChangeHeader, HeaderIndex: 2, HeaderName: "Subject", HeaderValue: "changed"},
		{Code: gomilter.ActChangeHeader, HeaderIndex: 1, HeaderName: "X-Remove", HeaderValue: ""},
		{Code: gomilter.ActQuarantine, Reason: "suspicious"},
		{Code: gomilter.ActChangeFrom, From: "<new@example.org>", FromArgs: []string{"BODY=8BITMIME", ""}},
		{Code: gomilter.ActAddRcpt, Rcpt: "<added@example.org>"},
		{Code: gomilter.ActDelRcpt, Rcpt: "<b@example.net>"},
	}
	if len(gotMods) != len(want) {
		t.Fatalf("got %d modifications, want %d: %+v", len(gotMods), len(want), gotMods)
	}
	for i := range want {
		if fmt.Sprintf("%+v", gotMods[i]) != fmt.Sprintf("%+v", want[i]) {
			t.Errorf("modification %d:\n got %+v\nwant %+v", i, gotMods[i], want[i])
		}
	}
}

// TestCustomReplyWithClient checks the SMFIR_REPLYCODE payload as
// go-milter's client parses it, including '%' escaping.
func TestCustomReplyWithClient(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.onRcpt = func(_ *testSession, to string) Reply {
		if strings.HasPrefix(to, "spam") {
			return Reply{Action: Reject, Code: 554, Enhanced: "5.7.9", Text: "100% spam"}
		}
		return Reply{Action: TempFail, Text: "greylisted"}
	}
	ts := startServer(t, b)
	s := ts.client(t, fullActions, fullProtocol)
	defer s.Close()
	if _, err := s.Mail("a@example.net", nil); err != nil {
		t.Fatal(err)
	}
	act, err := s.Rcpt("spam@example.net", nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 554 || act.SMTPText != "5.7.9 100%% spam" {
		t.Errorf("reject reply %+v", act)
	}
	act, err = s.Rcpt("ham@example.net", nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 || act.SMTPText != "4.7.1 greylisted" {
		t.Errorf("tempfail reply %+v", act)
	}
}

// TestSeveralMessagesWithClient: per-message state resets, also after a
// custom reply ended a message at MAIL (go-milter's server got this wrong).
func TestSeveralMessagesWithClient(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.onMail = func(_ *testSession, from string) Reply {
		if from == "blocked@example.net" {
			return Reply{Action: Reject, Code: 550, Text: "no"}
		}
		return Reply{}
	}
	b.onEOM = func(s *testSession) (Reply, []Modification) {
		return Reply{}, []Modification{{Kind: AddHeader, Name: "X-Count", Value: fmt.Sprint(s.headers)}}
	}
	b.macrosAtEOM = []string{"i"}
	ts := startServer(t, b)
	s := ts.client(t, fullActions, fullProtocol)
	defer s.Close()

	act, err := s.Mail("blocked@example.net", nil)
	if err != nil || act.Code != gomilter.ActReplyCode || act.SMTPCode != 550 {
		t.Fatalf("blocked MAIL: %+v, %v", act, err)
	}
	for msg := 1; msg <= 3; msg++ {
		if err := s.Macros(gomilter.CodeMail, "i", fmt.Sprintf("Q%d", msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mail(fmt.Sprintf("s%d@example.net", msg), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rcpt("r@example.net", nil); err != nil {
			t.Fatal(err)
		}
		for h := 0; h < msg; h++ {
			if _, err := s.HeaderField("X-H", fmt.Sprint(h)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			t.Fatal(err)
		}
		mods, act, err := s.End()
		if err != nil {
			t.Fatal(err)
		}
		if act.Code != gomilter.ActContinue || len(mods) != 1 || mods[0].HeaderValue != fmt.Sprint(msg) {
			t.Errorf("message %d: action %q mods %+v", msg, act.Code, mods)
		}
	}
	events := strings.Join(b.log.snapshot(), "\n")
	for _, want := range []string{
		"mail <blocked@example.net> []\nabort\nmail <s1@example.net>",
		"eom headers=1 body=0 macros=[i=Q1/true]",
		"eom headers=2 body=0 macros=[i=Q2/true]",
		"eom headers=3 body=0 macros=[i=Q3/true]",
	} {
		if !strings.Contains(events, want) {
			t.Errorf("events lack %q:\n%s", want, events)
		}
	}
	if n := strings.Count(events, "abort"); n != 1 {
		t.Errorf("%d aborts, want 1 (after the rejected MAIL)", n)
	}
}

// TestAbortMidMessageWithClient: SMFIC_ABORT then a second message on the
// same connection sees no state of the first.
func TestAbortMidMessageWithClient(t *testing.T) {
	b := newTestBackend(allNeeds())
	b.macrosAtEOM = []string{"{rcpt_addr}", "i", "j"}
	ts := startServer(t, b)
	s := ts.client(t, fullActions, fullProtocol)
	defer s.Close()

	steps := []func() error{
		func() error { return s.Macros(gomilter.CodeConn, "j", "mx") },
		func() error { _, err := s.Conn("h", gomilter.FamilyInet6, 25, "2001:db8::1"); return err },
		func() error { return s.Macros(gomilter.CodeMail, "i", "FIRST") },
		func() error { _, err := s.Mail("first@example.net", nil); return err },
		func() error { return s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", "x@example.net") },
		func() error { _, err := s.Rcpt("x@example.net", nil); return err },
		func() error { _, err := s.HeaderField("Subject", "one"); return err },
		s.Abort,
		func() error { _, err := s.Mail("second@example.net", nil); return err },
		func() error { _, err := s.HeaderField("Subject", "two"); return err },
		func() error { _, err := s.HeaderEnd(); return err },
		func() error { _, _, err := s.End(); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	s.Close()
	b.log.waitClosed(t, 1)
	wantEvents(t, b.log.snapshot(),
		"new session 1 version=6",
		"connect host=h family=inet6 port=25 addr=2001:db8::1",
		"mail <first@example.net> []",
		"rcpt <x@example.net> []",
		"header Subject: one",
		"abort",
		"mail <second@example.net> []",
		"header Subject: two",
		"eoh headers=1",
		"eom headers=1 body=0 macros=[{rcpt_addr}=/false i=/false j=mx/true]",
		"close 1",
	)
}

// TestNegotiationQuietStages: over a unix socket (quietOK) the stages the
// Session always continues are negotiated no-reply, and DATA away; each
// only where the MTA offers it; never SMFIP_NR_DATA, _EOH or _BODY.
func TestNegotiationQuietStages(t *testing.T) {
	nr := gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply
	base := gomilter.OptNoBody | gomilter.OptNoHeaderReply | gomilter.OptNoEOH | gomilter.OptNoUnknown
	cases := []struct {
		name  string
		offer optneg
		needs Needs
		want  gomilter.OptProtocol
	}{
		{"all quiet", optneg{6, 0, fullProtocol}, quiet, base | gomilter.OptNoData | nr},
		{"rcpt answers", optneg{6, 0, fullProtocol},
			Needs{Connect: true, Helo: true, Mail: true, Rcpt: true, Headers: true, AlwaysContinue: StageConnect | StageHelo | StageMail},
			base | gomilter.OptNoData | nr&^gomilter.OptNoRcptReply},
		{"version 2 offer", optneg{2, 0, 0x7f}, quiet, gomilter.OptNoBody | gomilter.OptNoEOH},
		{"body wanted keeps EOH", optneg{6, 0, fullProtocol},
			Needs{Mail: true, Headers: true, Body: true, AlwaysContinue: StageMail},
			gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoRcptTo | gomilter.OptNoHeaderReply | gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoMailReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := negotiate(tc.offer, tc.needs, true)
			if got.protocol != tc.want {
				t.Errorf("protocol %#x, want %#x", uint32(got.protocol), uint32(tc.want))
			}
			if got.protocol&(gomilter.OptNoDataReply|gomilter.OptNoEOHReply|gomilter.OptNoBodyReply) != 0 {
				t.Errorf("protocol %#x asks for no reply at DATA, EOH or BODY", uint32(got.protocol))
			}
		})
	}
}
