package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/server"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type replayFlags struct {
	config     *string
	from       string
	rcpts      stringList
	clientIP   string
	clientHost string
	helo       string
	queueID    string
}

// runReplay runs one message through the plugin chain in-process, the way
// the MTA would deliver it, and prints the outcome of every stage, the
// final verdict and the changes to the header.
func runReplay(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlagSet("replay", stderr)
	f := replayFlags{config: cfgPath}
	fs.StringVar(&f.from, "from", "", "envelope sender (default: the From header's address; \"<>\" for the null sender)")
	fs.Var(&f.rcpts, "rcpt", "envelope recipient, repeatable (default: the To and Cc addresses)")
	fs.StringVar(&f.clientIP, "client-ip", "127.0.0.1", "client IP address the MTA reports")
	fs.StringVar(&f.clientHost, "client-host", "localhost", "client host name the MTA reports")
	fs.StringVar(&f.helo, "helo", "replay.localhost", "HELO/EHLO name")
	fs.StringVar(&f.queueID, "queue-id", "REPLAY", "queue ID (macro i)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wasmilter replay [-config FILE] [flags] MSG.eml")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	msg, err := readMessage(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := msg.envelope(&f); err != nil {
		return err
	}
	cfg, err := loadConfig(*f.config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ledger, closeLedger, err := throwawayLedger()
	if err != nil {
		return err
	}
	defer closeLedger()
	srv, err := server.Build(context.Background(), cfg, server.Options{Logger: log, Ledger: ledger})
	if err != nil {
		return err
	}
	defer srv.Release()
	macros := replayMacros{"i": f.queueID, "j": "replay.localhost", "{client_addr}": f.clientIP,
		"{client_name}": f.clientHost, "{mail_addr}": msg.from}
	sess := srv.Pipeline().NewOfflineSession(macros)
	return replaySession(sess, &f, msg, stdout)
}

type replayMacros map[string]string

func (m replayMacros) Macro(name string) (string, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	v, ok := m["{"+strings.Trim(name, "{}")+"}"]
	return v, ok
}

// replayMessage is a message file as the MTA would pass it on.
type replayMessage struct {
	headers []abi.Header
	from    string
	rcpts   []string
	parsed  textproto.Header
}

func readMessage(path string) (*replayMessage, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	h, err := textproto.ReadHeader(bufio.NewReader(file))
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	m := &replayMessage{parsed: h}
	for fields := h.Fields(); fields.Next(); {
		raw, err := fields.Raw()
		if err != nil {
			return nil, fmt.Errorf("%s: header %s: %w", path, fields.Key(), err)
		}
		m.headers = append(m.headers, abi.Header{Name: fields.Key(), Value: mtaValue(raw)})
	}
	return m, nil
}

// mtaValue turns a raw header field into the value an MTA passes to a
// milter: after the colon and one space, line breaks inside folds as LF,
// without the final line break.
func mtaValue(raw []byte) string {
	_, v, _ := strings.Cut(string(raw), ":")
	v = strings.TrimPrefix(v, " ")
	v = strings.TrimRight(v, "\r\n")
	return strings.ReplaceAll(v, "\r\n", "\n")
}

// envelope fills in the sender and recipients, from the flags or else from
// the message's own From, To and Cc.
func (m *replayMessage) envelope(f *replayFlags) error {
	mh := mail.Header{Header: message.Header{Header: m.parsed}}
	switch {
	case f.from == "<>":
		m.from = ""
	case f.from != "":
		m.from = strings.Trim(f.from, "<>")
	default:
		addrs, err := mh.AddressList("From")
		if err != nil || len(addrs) == 0 {
			return errors.New("no -from given and the message has no usable From header")
		}
		m.from = addrs[0].Address
	}
	m.rcpts = append(m.rcpts, f.rcpts...)
	if len(m.rcpts) == 0 {
		for _, key := range []string{"To", "Cc"} {
			addrs, _ := mh.AddressList(key)
			for _, a := range addrs {
				m.rcpts = append(m.rcpts, a.Address)
			}
		}
	}
	if len(m.rcpts) == 0 {
		return errors.New("no -rcpt given and the message has no To or Cc addresses")
	}
	return nil
}

// replaySession drives a pipeline session through the stages in MTA order
// and reports; it stops at the first stage that ends the message.
func replaySession(sess milter.Session, f *replayFlags, m *replayMessage, w io.Writer) error {
	defer sess.Close()
	sess.Needs()
	family := "inet"
	if ip, err := netip.ParseAddr(f.clientIP); err == nil && ip.Is6() {
		family = "inet6"
	}
	stages := []struct {
		name string
		call func() milter.Reply
	}{
		{"connect", func() milter.Reply {
			return sess.Connect(milter.ConnInfo{Host: f.clientHost, Family: family, Port: 25, Addr: f.clientIP})
		}},
		{"helo", func() milter.Reply { return sess.Helo(f.helo) }},
		{"mail", func() milter.Reply { return sess.Mail(m.from, nil) }},
	}
	for _, st := range stages {
		if r := st.call(); ended(w, st.name, r) {
			return nil
		}
	}
	for _, rc := range m.rcpts {
		if r := sess.Rcpt(rc, nil); r.Action != milter.Continue {
			fmt.Fprintf(w, "rcpt %s: %s\n", rc, replyText(r))
		}
	}
	for _, h := range m.headers {
		sess.Header(h.Name, h.Value)
	}
	if r := sess.EndOfHeaders(); ended(w, "headers", r) {
		return nil
	}
	reply, mods := sess.EndOfMessage()
	fmt.Fprintf(w, "verdict: %s\n", replyText(reply))
	printChanges(w, m.headers, mods)
	return nil
}

// ended prints a stage's reply when it ends the message.
func ended(w io.Writer, stage string, r milter.Reply) bool {
	if r.Action == milter.Continue {
		return false
	}
	fmt.Fprintf(w, "verdict at %s: %s\n", stage, replyText(r))
	return r.Action != milter.Accept
}

func replyText(r milter.Reply) string {
	s := r.Action.String()
	if r.Code != 0 {
		s += fmt.Sprintf(" (%d %s %s)", r.Code, r.Enhanced, r.Text)
	}
	return s
}
