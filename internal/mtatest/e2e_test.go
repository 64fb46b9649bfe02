package mtatest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// These tests prove the harness against the real MTAs, with go-milter's own
// server as the milter: if they pass, a wasmilter test built on the harness
// is talking to a real Postfix or Sendmail through a real milter socket.

const (
	addedHeader = "X-Mtatest-Milter"
	addedValue  = "seen by go-milter"
	rejectReply = "550 5.7.1 mtatest milter refuses this message"
	waitForMail = 10 * time.Second
)

// headerAdder adds addedHeader at end of message and accepts.
type headerAdder struct{ milter.NoOpMilter }

func (headerAdder) Body(m *milter.Modifier) (milter.Response, error) {
	if err := m.AddHeader(addedHeader, addedValue); err != nil {
		return nil, err
	}
	return milter.RespAccept, nil
}

// rejecter refuses every message at end of message with rejectReply.
type rejecter struct{ milter.NoOpMilter }

func (rejecter) Body(*milter.Modifier) (milter.Response, error) {
	return milter.NewResponseStr(byte(milter.ActReplyCode), rejectReply), nil
}

// startGoMilter serves newMilter on network/address until the test ends
// and returns the listener's address.
func startGoMilter(t *testing.T, network, address string, newMilter func() milter.Milter) net.Addr {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatalf("milter listen: %v", err)
	}
	if network == "unix" {
		// smtpd runs as the postfix user.
		if err := os.Chmod(address, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	srv := &milter.Server{NewMilter: newMilter, Actions: milter.OptAddHeader}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		// Closing the listener (not srv.Close, which races with Serve on
		// an unguarded flag) ends Serve.
		ln.Close()
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("milter server: %v", err)
		}
	})
	return ln.Addr()
}

func postfixInetSpec(a net.Addr) string { return "inet:" + a.String() }
func sendmailInetSpec(a net.Addr) string {
	return fmt.Sprintf("inet:%d@127.0.0.1", a.(*net.TCPAddr).Port)
}

// testMail returns a message with a unique Message-ID.
func testMail(t *testing.T) Mail {
	id := fmt.Sprintf("<%d.%s@client.wasmilter.test>", time.Now().UnixNano(), strings.ReplaceAll(t.Name(), "/", "."))
	return Mail{
		From: "sender@client.wasmilter.test",
		To:   []string{"rcpt@remote.wasmilter.test"},
		Data: "From: Sender <sender@client.wasmilter.test>\r\n" +
			"To: rcpt@remote.wasmilter.test\r\n" +
			"Subject: mtatest " + t.Name() + "\r\n" +
			"Message-ID: " + id + "\r\n" +
			"\r\n" +
			"Hello from the mtatest harness.\r\n",
	}
}

// requireAccepted fails unless the end-of-DATA reply was a 250.
func requireAccepted(t *testing.T, res SendResult) {
	t.Helper()
	if res.Code != 250 {
		t.Fatalf("end of DATA answered %d %s %q, want 250\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
}

// requireOneWithHeader waits for exactly one message at sink and checks it
// is m with the milter's header added.
func requireOneWithHeader(t *testing.T, sink *Sink, m Mail, wantHeader bool) {
	t.Helper()
	got := sink.Wait(t, 1, waitForMail)
	if len(got) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(got))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatalf("relayed message does not parse: %v\n%s", err, got[0].Data)
	}
	wantID := headerOf(t, m.Data, "Message-ID")
	if id := msg.Header.Get("Message-ID"); id != wantID {
		t.Errorf("relayed Message-ID %q, want %q", id, wantID)
	}
	if got[0].From != m.From || strings.Join(got[0].To, ",") != strings.Join(m.To, ",") {
		t.Errorf("relayed envelope %s -> %v, want %s -> %v", got[0].From, got[0].To, m.From, m.To)
	}
	switch v := msg.Header.Get(addedHeader); {
	case wantHeader && v != addedValue:
		t.Errorf("relayed %s = %q, want %q\n%s", addedHeader, v, addedValue, got[0].Data)
	case !wantHeader && v != "":
		t.Errorf("relayed message carries %s = %q, want none", addedHeader, v)
	}
}

func headerOf(t *testing.T, data, name string) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get(name)
}

func TestPostfixInetMilterAddsHeader(t *testing.T) {
	t.Parallel()
	sink := StartSink(t)
	addr := startGoMilter(t, "tcp", "127.0.0.1:0", func() milter.Milter { return headerAdder{} })
	pf := StartPostfix(t, PostfixConfig{Milter: postfixInetSpec(addr), RelayTo: sink.Addr})

	m := testMail(t)
	m.Source = "127.0.0.2" // also proves the source-address plumbing
	requireAccepted(t, Send(t, pf.SMTPAddr, m))
	requireOneWithHeader(t, sink, m, true)
	if log := pf.Log(); !strings.Contains(log, "client=unknown[127.0.0.2]") {
		t.Errorf("maillog does not show the client 127.0.0.2:\n%s", log)
	}
}

func TestPostfixUnixMilterAddsHeader(t *testing.T) {
	t.Parallel()
	sink := StartSink(t)
	sock := filepath.Join(ShortTempDir(t), "milter.sock")
	startGoMilter(t, "unix", sock, func() milter.Milter { return headerAdder{} })
	pf := StartPostfix(t, PostfixConfig{Milter: "unix:" + sock, RelayTo: sink.Addr})

	m := testMail(t)
	requireAccepted(t, Send(t, pf.SMTPAddr, m))
	requireOneWithHeader(t, sink, m, true)
}

func TestSendmailInetMilterAddsHeader(t *testing.T) {
	t.Parallel()
	sink := StartSink(t)
	addr := startGoMilter(t, "tcp", "127.0.0.1:0", func() milter.Milter { return headerAdder{} })
	sm := StartSendmail(t, SendmailConfig{Milter: sendmailInetSpec(addr), RelayTo: sink.Addr})

	m := testMail(t)
	requireAccepted(t, Send(t, sm.SMTPAddr, m))
	requireOneWithHeader(t, sink, m, true)
	// "wasmilter" is the filter's name in examples/sendmail/wasmilter.mc,
	// whose line the harness runs.
	if log := sm.Log(); !strings.Contains(log, "Milter (wasmilter) add: header") {
		t.Errorf("sendmail's log does not mention the example's milter:\n%s", log)
	}
}

func TestSendmailUnixMilterAddsHeader(t *testing.T) {
	t.Parallel()
	sink := StartSink(t)
	sock := filepath.Join(ShortTempDir(t), "milter.sock")
	startGoMilter(t, "unix", sock, func() milter.Milter { return headerAdder{} })
	sm := StartSendmail(t, SendmailConfig{Milter: "local:" + sock, RelayTo: sink.Addr})

	m := testMail(t)
	requireAccepted(t, Send(t, sm.SMTPAddr, m))
	requireOneWithHeader(t, sink, m, true)
}

func TestMilterRejectReachesClient(t *testing.T) {
	t.Parallel()
	for _, mta := range []string{"postfix", "sendmail"} {
		t.Run(mta, func(t *testing.T) {
			t.Parallel()
			sink := StartSink(t)
			addr := startGoMilter(t, "tcp", "127.0.0.1:0", func() milter.Milter { return rejecter{} })
			var smtpAddr string
			if mta == "postfix" {
				smtpAddr = StartPostfix(t, PostfixConfig{Milter: postfixInetSpec(addr), RelayTo: sink.Addr}).SMTPAddr
			} else {
				smtpAddr = StartSendmail(t, SendmailConfig{Milter: sendmailInetSpec(addr), RelayTo: sink.Addr}).SMTPAddr
			}

			res := Send(t, smtpAddr, testMail(t))
			if res.Code != 550 || res.Enhanced != "5.7.1" || res.Text != "mtatest milter refuses this message" {
				t.Errorf("got %d %q %q, want 550 5.7.1 and the milter's text\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
			}
			// Nothing may reach the sink; give a wrongly accepted message
			// time to be relayed before looking.
			time.Sleep(500 * time.Millisecond)
			if got := sink.Messages(); len(got) != 0 {
				t.Errorf("sink got %d messages after a reject, want none", len(got))
			}
		})
	}
}

func TestPostfixSetMilterTakesEffect(t *testing.T) {
	t.Parallel()
	sink := StartSink(t)
	addr := startGoMilter(t, "tcp", "127.0.0.1:0", func() milter.Milter { return headerAdder{} })
	pf := StartPostfix(t, PostfixConfig{RelayTo: sink.Addr})

	first := testMail(t)
	requireAccepted(t, Send(t, pf.SMTPAddr, first))
	requireOneWithHeader(t, sink, first, false)

	pf.SetMilter(t, postfixInetSpec(addr))
	second := testMail(t)
	requireAccepted(t, Send(t, pf.SMTPAddr, second))
	got := sink.Wait(t, 2, waitForMail)
	msg, err := mail.ReadMessage(bytes.NewReader(got[1].Data))
	if err != nil {
		t.Fatal(err)
	}
	if v := msg.Header.Get(addedHeader); v != addedValue {
		t.Errorf("after SetMilter: %s = %q, want %q", addedHeader, v, addedValue)
	}
}

func TestTwoPostfixInstancesAtOnce(t *testing.T) {
	t.Parallel()
	sinkA, sinkB := StartSink(t), StartSink(t)
	a := StartPostfix(t, PostfixConfig{RelayTo: sinkA.Addr})
	b := StartPostfix(t, PostfixConfig{RelayTo: sinkB.Addr})
	if a.SMTPAddr == b.SMTPAddr || a.Dir == b.Dir {
		t.Fatalf("instances share %s / %s", a.SMTPAddr, a.Dir)
	}
	ma, mb := testMail(t), testMail(t)
	ma.To = []string{"a@remote.wasmilter.test"}
	mb.To = []string{"b@remote.wasmilter.test"}
	requireAccepted(t, Send(t, a.SMTPAddr, ma))
	requireAccepted(t, Send(t, b.SMTPAddr, mb))
	if got := sinkA.Wait(t, 1, waitForMail); got[0].To[0] != ma.To[0] {
		t.Errorf("instance A relayed to %v", got[0].To)
	}
	if got := sinkB.Wait(t, 1, waitForMail); got[0].To[0] != mb.To[0] {
		t.Errorf("instance B relayed to %v", got[0].To)
	}
}
