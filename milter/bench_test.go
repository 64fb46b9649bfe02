package milter

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// benchSession is a minimal policy: count headers, add one at the end.
type benchSession struct{ headers int }

func (s *benchSession) Needs() Needs {
	return Needs{Mail: true, Rcpt: true, Headers: true, Body: true, Actions: gomilter.OptAddHeader}
}
func (s *benchSession) Connect(ConnInfo) Reply      { return Reply{} }
func (s *benchSession) Helo(string) Reply           { return Reply{} }
func (s *benchSession) Mail(string, []string) Reply { s.headers = 0; return Reply{} }
func (s *benchSession) Rcpt(string, []string) Reply { return Reply{} }
func (s *benchSession) Header(string, string)       { s.headers++ }
func (s *benchSession) EndOfHeaders() Reply         { return Reply{} }
func (s *benchSession) BodyChunk([]byte) Reply      { return Reply{} }
func (s *benchSession) Abort()                      {}
func (s *benchSession) Close()                      {}
func (s *benchSession) EndOfMessage() (Reply, []Modification) {
	return Reply{}, []Modification{{Kind: AddHeader, Name: "X-Checked", Value: "yes"}}
}

type benchBackend struct{}

func (benchBackend) NewSession(*Conn) Session { return &benchSession{} }

// BenchmarkMessage sends one full message of 20 headers per iteration
// through a server on a unix socket, with go-milter's client as the MTA.
// The client allocates per packet and waits for each reply, so it is a
// large share of the cost measured here.
func BenchmarkMessage(b *testing.B) {
	dir, err := os.MkdirTemp("", "mb") // unix socket paths must stay short
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := Listen("unix:"+filepath.Join(dir, "m.sock"), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	ts := serveOn(b, ln, benchBackend{}, func(s *Server) { s.Logger = discardLogger() })
	s := ts.client(b, gomilter.OptAddHeader, fullProtocol)
	defer s.Close()
	headers := make([][2]string, 20)
	for i := range headers {
		headers[i] = [2]string{fmt.Sprintf("X-Header-%d", i), "some ordinary header value of moderate length"}
	}
	body := []byte("Hello,\r\n\r\nthis is the body of a benchmark message.\r\n")

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Mail("sender@example.net", nil); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Rcpt("rcpt@example.org", nil); err != nil {
			b.Fatal(err)
		}
		for _, h := range headers {
			if _, err := s.HeaderField(h[0], h[1]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.BodyChunk(body); err != nil {
			b.Fatal(err)
		}
		mods, act, err := s.End()
		if err != nil || len(mods) != 1 || act.Code != gomilter.ActContinue {
			b.Fatalf("end: %v %v %v", mods, act, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMessageRaw measures the server alone: the MTA side writes
// pre-encoded packets the way Postfix does (headers streamed without
// replies, then EOH) and reads replies with a reused buffer.
func BenchmarkMessageRaw(b *testing.B) {
	dir, err := os.MkdirTemp("", "mb")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := Listen("unix:"+filepath.Join(dir, "m.sock"), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	ts := serveOn(b, ln, benchBackend{}, func(s *Server) { s.Logger = discardLogger() })
	m := dialRaw(b, ts)
	m.negotiate(6, gomilter.OptAddHeader, fullProtocol)

	mail := append(packet('D', "M"+cstr("i", "4XyZ")), packet('M', cstr("<sender@example.net>", "BODY=8BITMIME"))...)
	rcpt := packet('R', cstr("<rcpt@example.org>"))
	data := packet('T')
	var headers []byte
	for i := 0; i < 20; i++ {
		headers = append(headers, packet('L', cstr(fmt.Sprintf("X-Header-%d", i), "some ordinary header value of moderate length"))...)
	}
	headers = append(headers, packet('N')...)
	body := packet('B', "Hello,\r\n\r\nthis is the body of a benchmark message.\r\n")
	eom := packet('E')
	reply := make([]byte, 64)
	roundTrip := func(p []byte, replies int) {
		if _, err := m.conn.Write(p); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < replies; i++ {
			if _, err := io.ReadFull(m.conn, reply[:4]); err != nil {
				b.Fatal(err)
			}
			n := binary.BigEndian.Uint32(reply[:4])
			if _, err := io.ReadFull(m.conn, reply[:n]); err != nil {
				b.Fatal(err)
			}
		}
	}
	m.conn.SetDeadline(time.Time{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip(mail, 1)
		roundTrip(rcpt, 1)
		roundTrip(data, 1)
		roundTrip(headers, 1)
		roundTrip(body, 1)
		roundTrip(eom, 2) // the added header and the final continue
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
