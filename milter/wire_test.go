package milter

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

func TestDecodeConnect(t *testing.T) {
	cases := []struct {
		payload string
		want    ConnInfo
	}{
		{connectPayload("mx.example", '4', 25, "192.0.2.1"), ConnInfo{"mx.example", "inet", 25, "192.0.2.1"}},
		{connectPayload("v6", '6', 587, "2001:db8::1"), ConnInfo{"v6", "inet6", 587, "2001:db8::1"}},
		{connectPayload("local", 'L', 0, "/run/s"), ConnInfo{"local", "unix", 0, "/run/s"}},
		{"local\x00L/run/s\x00", ConnInfo{"local", "unix", 0, "/run/s"}}, // go-milter's client omits the port
		{"local\x00L\x00", ConnInfo{"local", "unix", 0, ""}},
		{connectPayload("[unknown]", 'U', 0, ""), ConnInfo{"[unknown]", "unknown", 0, ""}},
	}
	for _, tc := range cases {
		got, err := decodeConnect([]byte(tc.payload))
		if err != nil || got != tc.want {
			t.Errorf("decodeConnect(%q) = %+v, %v; want %+v", tc.payload, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "host", "host\x00", "host\x004\x00", "host\x004\x00\x19addr", "host\x00Z", connectPayload("h", '4', 1, "a") + "extra"} {
		if _, err := decodeConnect([]byte(bad)); err == nil {
			t.Errorf("decodeConnect(%q) accepted", bad)
		}
	}
}

func TestDecodeEnvelope(t *testing.T) {
	addr, args, err := decodeEnvelope([]byte(cstr("<a@b>", "SIZE=1", "BODY=8BITMIME")), "MAIL")
	if err != nil || addr != "a@b" || len(args) != 2 || args[1] != "BODY=8BITMIME" {
		t.Errorf("got %q %q %v", addr, args, err)
	}
	if addr, _, _ := decodeEnvelope([]byte(cstr("<>")), "MAIL"); addr != "" {
		t.Errorf("null sender decoded as %q", addr)
	}
	if addr, _, _ := decodeEnvelope([]byte(cstr("bare@b")), "MAIL"); addr != "bare@b" {
		t.Errorf("bare address decoded as %q", addr)
	}
	if _, _, err := decodeEnvelope([]byte("<a@b>\x00SIZE"), "MAIL"); err == nil {
		t.Error("unterminated argument accepted")
	}
}

func TestPacketReader(t *testing.T) {
	stream := append(packet('M', cstr("<a@b>")), packet('E')...)
	p := newPacketReader(bytes.NewReader(stream), 64)
	defer p.release()
	cmd, data, err := p.next()
	if err != nil || cmd != 'M' || string(data) != cstr("<a@b>") {
		t.Fatalf("first packet %q %q %v", cmd, data, err)
	}
	cmd, data, err = p.next()
	if err != nil || cmd != 'E' || len(data) != 0 {
		t.Fatalf("second packet %q %q %v", cmd, data, err)
	}
	if _, _, err := p.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
}

func TestReplyEncoding(t *testing.T) {
	w := newPacketWriter()
	defer w.release()
	w.replyCode(550, "5.7.1", "100%")
	if got := string(w.pending()); got != "\x00\x00\x00\x11y550 5.7.1 100%%\x00" {
		t.Errorf("reply code packet %q", got)
	}
	if _, err := encodeReply(Reply{Action: Action(42)}); err == nil {
		t.Error("unknown action accepted")
	}
	if enc, _ := encodeReply(Reply{Action: Reject, Text: strings.Repeat("x", maxReplyText+1)}); enc.custom {
		t.Error("over-long text sent")
	}
}

func TestModificationValidation(t *testing.T) {
	bad := []Modification{
		{Kind: AddHeader, Name: "", Value: "v"},
		{Kind: AddHeader, Name: "Bad Name", Value: "v"},
		{Kind: AddHeader, Name: "X:Y", Value: "v"},
		{Kind: AddHeader, Name: "X", Value: "a\r\nInjected: yes"},
		{Kind: AddHeader, Name: "X", Value: "a\nInjected: yes"},
		{Kind: AddHeader, Name: "X", Value: "trailing\r\n"},
		{Kind: AddHeader, Name: "X", Value: "nul\x00"},
		{Kind: InsertHeader, Index: -1, Name: "X", Value: "v"},
		{Kind: ChangeHeader, Index: 0, Name: "X", Value: "v"},
		{Kind: ChangeHeader, Index: 1, Name: "X", Value: ""},
		{Kind: DeleteHeader, Index: 0, Name: "X"},
		{Kind: Quarantine},
		{Kind: ChangeFrom, Value: "a@b\r\n"},
		{Kind: AddRcpt, Value: ""},
		{Kind: AddRcpt, Value: "a@b", Args: []string{"A B"}},
		{Kind: ModKind(99)},
	}
	for _, m := range bad {
		if err := m.validate(); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	good := []Modification{
		{Kind: AddHeader, Name: "X-Folded", Value: "a\r\n\tb"},
		{Kind: InsertHeader, Index: 0, Name: "X", Value: ""},
		{Kind: DeleteHeader, Index: 1, Name: "X"},
		{Kind: ChangeFrom, Value: ""},
		{Kind: DelRcpt, Value: "a@b"},
	}
	for _, m := range good {
		if err := m.validate(); err != nil {
			t.Errorf("%+v refused: %v", m, err)
		}
	}
}

func TestMacroLookup(t *testing.T) {
	var m macroSet
	m.store(macroConnect, []byte(cstr("j", "mx", "{daemon_name}", "smtpd", "i", "conn-level")))
	m.store(macroMail, []byte(cstr("{i}", "QID", "dangling")))
	for name, want := range map[string]string{"j": "mx", "{j}": "mx", "daemon_name": "smtpd", "i": "QID", "{i}": "QID"} {
		if v, ok := m.lookup(name); !ok || v != want {
			t.Errorf("lookup(%q) = %q, %v; want %q", name, v, ok, want)
		}
	}
	if _, ok := m.lookup("dangling"); ok {
		t.Error("name without value found")
	}
	m.clearMessage()
	if v, _ := m.lookup("i"); v != "conn-level" {
		t.Errorf("after clearMessage i = %q", v)
	}
}

// The steady-state packet path must not allocate: this is what the
// benchmarks later measure per message.
func TestPacketPathAllocations(t *testing.T) {
	stream := packet('L', cstr("Subject", "hello"))
	r := bytes.NewReader(nil)
	p := newPacketReader(r, defaultMaxPacket)
	defer p.release()
	w := newPacketWriter()
	defer w.release()
	var macros macroSet
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(stream)
		_, data, err := p.next()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := decodeHeader(data); err != nil {
			t.Fatal(err)
		}
		macros.store(macroMail, data)
		w.reset()
		w.simple(byte(gomilter.ActContinue))
		w.strings(byte(gomilter.ActAddHeader), "X-A", "b")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet, want 0", allocs)
	}
}

// FuzzPacketDecoding feeds arbitrary bytes to the framing and to every
// payload decoder: errors are fine, panics are not.
func FuzzPacketDecoding(f *testing.F) {
	f.Add(packet('O', optnegPayload(6, fullActions, fullProtocol)))
	f.Add(packet('C', connectPayload("h", '4', 25, "192.0.2.1")))
	f.Add(packet('C', connectPayload("h", 'L', 0, "/s")))
	f.Add(packet('D', "M"+cstr("i", "Q", "{x}", "y")))
	f.Add(packet('M', cstr("<a@b>", "SIZE=1")))
	f.Add(packet('L', cstr("Subject", "x")))
	f.Add([]byte("\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		p := newPacketReader(bytes.NewReader(stream), 4096)
		defer p.release()
		for {
			cmd, data, err := p.next()
			if err != nil {
				return
			}
			decodeAny(cmd, data)
		}
	})
}

func decodeAny(cmd byte, data []byte) {
	_, _ = decodeOptneg(data)
	_, _ = decodeConnect(data)
	_, _ = decodeHelo(data)
	_, _, _ = decodeEnvelope(data, "X")
	_, _, _ = decodeHeader(data)
	if stage, pairs, err := decodeMacros(data); err == nil {
		var m macroSet
		if s, ok := macroStageFor(stage); ok {
			m.store(s, pairs)
			m.lookup("i")
		}
	}
	_ = commandName(cmd)
}

// FuzzSession runs an arbitrary packet stream through a real connection
// handler over net.Pipe: it must neither panic nor hang.
func FuzzSession(f *testing.F) {
	neg := packet('O', optnegPayload(6, fullActions, fullProtocol))
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	f.Add(join(neg, packet('C', connectPayload("h", '4', 25, "a")), packet('M', cstr("<a@b>")),
		packet('R', cstr("<c@d>")), packet('T'), packet('L', cstr("S", "v")), packet('N'),
		packet('B', "body"), packet('E'), packet('Q')))
	f.Add(join(neg, packet('M', cstr("<a@b>")), packet('A'), packet('K'), packet('C', connectPayload("h", 'U', 0, ""))))
	f.Add(join(packet('O', optnegPayload(2, 0x3f, 0)), packet('D', "C"+cstr("j", "x")), packet('U', "XYZ")))
	f.Fuzz(func(t *testing.T, stream []byte) {
		runFuzzSession(t, stream)
	})
}

func runFuzzSession(t *testing.T, stream []byte) {
	b := newTestBackend(allNeeds())
	b.onEOM = func(*testSession) (Reply, []Modification) {
		return Reply{Action: Reject, Code: 550, Text: "x%"}, []Modification{{Kind: AddHeader, Name: "X", Value: "y"}}
	}
	srv := &Server{Backend: b, ReadTimeout: time.Second, WriteTimeout: time.Second,
		Logger: discardLogger()}
	mta, server := net.Pipe()
	h := newConnHandler(srv, server)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer h.release()
		defer server.Close()
		h.serve()
	}()
	go io.Copy(io.Discard, mta) // drain replies so the server never blocks writing
	mta.SetWriteDeadline(time.Now().Add(2 * time.Second))
	mta.Write(stream)
	mta.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("session hung on input %q", stream)
	}
	if closes := b.log.closeCount(); closes != b.sessions {
		t.Fatalf("%d sessions, %d closes; events %q", b.sessions, closes, b.log.snapshot())
	}
}
