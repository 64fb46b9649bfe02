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
	// Time travel (replay_at.go): the attempts' offsets, the simulated
	// clock's start, and whether to print whole notices.
	at      offsetList
	start   string
	verbose bool
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
	fs.Var(&f.at, "at", "play an attempt at this offset from the simulated start (+0, +10m, +5h, +2d), repeatable, non-decreasing;\nthe delay notices due by then are swept first")
	fs.StringVar(&f.start, "start", "", "with -at: the simulated clock's start, RFC 3339 (default: now, to the second)")
	fs.BoolVar(&f.verbose, "v", false, "with -at: print every notice whole, and each attempt's header changes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wasmilter replay [-config FILE] [flags] [-at OFFSET]... MSG.eml")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	travel, err := f.timeTravel()
	if err != nil {
		// A usage error: say what is wrong, exit 2 like a bad flag.
		fmt.Fprintf(stderr, "wasmilter replay: %v\n", err)
		return exitError{2}
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
	if travel != nil {
		return travel.run(cfg, log, &f, msg, stdout)
	}
	ledger, closeLedger, err := throwawayLedger(nil)
	if err != nil {
		return err
	}
	defer closeLedger()
	srv, err := server.Build(context.Background(), cfg, server.Options{Logger: log, Ledger: ledger})
	if err != nil {
		return err
	}
	defer srv.Release()
	printAttempt(stdout, msg, playAttempt(newReplaySession(srv, &f, msg), &f, msg))
	return nil
}

// newReplaySession opens a pipeline session as one MTA connection would.
func newReplaySession(srv *server.Server, f *replayFlags, m *replayMessage) milter.Session {
	macros := replayMacros{"i": f.queueID, "j": "replay.localhost", "{client_addr}": f.clientIP,
		"{client_name}": f.clientHost, "{mail_addr}": m.from}
	return srv.Pipeline().NewOfflineSession(macros)
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

// attemptResult is what one attempt of the message through the pipeline
// came to.
type attemptResult struct {
	// replies are the answers other than continue, in MTA order: a stage's
	// (stage "connect", "helo", "mail", "headers") or a recipient's (rcpt).
	replies []stageReply
	// final is the end-of-message reply; reached is false when an earlier
	// stage ended the message.
	final   milter.Reply
	reached bool
	mods    []milter.Modification
	// stamp is the stamp the pipeline settled on at end of header; none when
	// the message was answered before (an expired record is refused then).
	stamp   abi.Stamp
	stamped bool
}

type stageReply struct {
	stage string
	rcpt  string // the recipient, for stage "rcpt"
	reply milter.Reply
}

// verdict is the reply that decided the attempt: the end-of-message reply,
// or the one that ended the message early.
func (a *attemptResult) verdict() stageReply {
	if a.reached || len(a.replies) == 0 {
		return stageReply{stage: "end of message", reply: a.final}
	}
	return a.replies[len(a.replies)-1]
}

// stamper is the pipeline session's view of the message's stamp (the host
// functions read it too); it is gone once the message ends.
type stamper interface {
	Stamp() (abi.Stamp, bool)
}

// playAttempt drives a pipeline session through the stages in MTA order;
// it stops at the first stage that ends the message.
func playAttempt(sess milter.Session, f *replayFlags, m *replayMessage) *attemptResult {
	defer sess.Close()
	res := &attemptResult{}
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
		if res.ended(st.name, st.call()) {
			return res
		}
	}
	for _, rc := range m.rcpts {
		if r := sess.Rcpt(rc, nil); r.Action != milter.Continue {
			res.replies = append(res.replies, stageReply{stage: "rcpt", rcpt: rc, reply: r})
		}
	}
	for _, h := range m.headers {
		sess.Header(h.Name, h.Value)
	}
	reply := sess.EndOfHeaders()
	if st, ok := sess.(stamper); ok {
		res.stamp, res.stamped = st.Stamp()
	}
	if res.ended("headers", reply) {
		return res
	}
	res.final, res.mods = sess.EndOfMessage()
	res.reached = true
	return res
}

// ended notes a stage's reply other than continue, and reports whether it
// ends the message (an accept lets the MTA go on to end of message).
func (a *attemptResult) ended(stage string, r milter.Reply) bool {
	if r.Action == milter.Continue {
		return false
	}
	a.replies = append(a.replies, stageReply{stage: stage, reply: r})
	return r.Action != milter.Accept
}

// printAttempt reports an attempt the way replay always has: every reply
// other than continue, the final verdict and the header changes as a diff.
func printAttempt(w io.Writer, m *replayMessage, a *attemptResult) {
	for _, r := range a.replies {
		if r.stage == "rcpt" {
			fmt.Fprintf(w, "rcpt %s: %s\n", r.rcpt, replyText(r.reply))
		} else {
			fmt.Fprintf(w, "verdict at %s: %s\n", r.stage, replyText(r.reply))
		}
	}
	if !a.reached {
		return
	}
	fmt.Fprintf(w, "verdict: %s\n", replyText(a.final))
	printChanges(w, m.headers, a.mods)
}

func replyText(r milter.Reply) string {
	s := r.Action.String()
	if r.Code != 0 {
		s += fmt.Sprintf(" (%d %s %s)", r.Code, r.Enhanced, r.Text)
	}
	return s
}
