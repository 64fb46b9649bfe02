package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// The report of a time-travel replay: one block per -at step, its lines
// labelled in one column so the eye runs down verdicts and stamps.
//
//	+40m    2026-11-20T10:40:00Z
//	  notice   delayed 4.7.1 to <alice@example.org>: "Delayed Mail (still being retried)"
//	  verdict  continue
//	  stamp    id=..., first seen 2026-11-20T10:00:00Z (same as at +0)
//	  ledger   passed, 3 attempts, age 40m

// stepWriter prints the report.
type stepWriter struct {
	w       io.Writer
	verbose bool
	width   int          // of the offset column
	headers []abi.Header // the message's, for the diff of header changes
}

func newStepWriter(w io.Writer, t *timeTravel, m *replayMessage) *stepWriter {
	sw := &stepWriter{w: w, verbose: t.verbose, headers: m.headers}
	for _, d := range t.offsets {
		sw.width = max(sw.width, len(formatOffset(d)))
	}
	return sw
}

// line prints one labelled line of a step.
func (sw *stepWriter) line(label, format string, args ...any) {
	fmt.Fprintf(sw.w, "  %-8s %s\n", label, fmt.Sprintf(format, args...))
}

// block prints text indented under a step (a notice, header changes).
func (sw *stepWriter) block(text string) {
	text = strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for l := range strings.SplitSeq(text, "\n") {
		fmt.Fprintf(sw.w, "  %8s | %s\n", "", l)
	}
}

// intro says what is played, from when.
func (sw *stepWriter) intro(m *replayMessage, start time.Time) {
	id := "without Message-ID"
	if v := m.parsed.Get("Message-Id"); v != "" {
		id = strings.TrimSpace(v)
	}
	fmt.Fprintf(sw.w, "message %s from <%s> to %s\n", id, m.from, angleList(m.rcpts))
	fmt.Fprintf(sw.w, "clock   simulated from %s; before each attempt the sweeper sends the delay notices due\n\n",
		start.Format(time.RFC3339))
}

// step prints one step: the notices the sweep sent, the attempt's verdict,
// its stamp compared with the first attempt's, and the ledger record.
func (sw *stepWriter) step(o stepOutcome, first *stampSeen) {
	fmt.Fprintf(sw.w, "%-*s  %s\n", sw.width, formatOffset(o.at), o.now.Format(time.RFC3339))
	if o.sweepErr != nil {
		sw.line("sweep", "failed: %v", o.sweepErr)
	}
	for _, n := range o.notices {
		sw.notice(n)
	}
	for _, r := range o.attempt.replies {
		if r.stage == "rcpt" {
			sw.line("rcpt", "<%s> %s", r.rcpt, verdictText(r.reply))
		}
	}
	v := o.attempt.verdict()
	where := ""
	if v.stage != "end of message" && v.stage != "rcpt" {
		where = " (at " + v.stage + ")"
	}
	sw.line("verdict", "%s%s", verdictText(v.reply), where)
	sw.line("stamp", "%s", first.compare(o.attempt, o.record, o.recorded, o.at))
	sw.line("ledger", "%s", recordText(o))
	if sw.verbose && o.attempt.reached && len(o.attempt.mods) > 0 {
		var b bytes.Buffer
		printChanges(&b, sw.headers, o.attempt.mods)
		sw.block(b.String())
	}
}

// notice prints a recorded notice: to whom, what it reports, its subject;
// with -v the whole message.
func (sw *stepWriter) notice(n recordedNotice) {
	s, err := summarizeNotice(n.msg)
	if err != nil {
		sw.line("notice", "to <%s>, unreadable: %v", n.to, err)
	} else {
		sw.line("notice", "%s to <%s>: %q", s.report, n.to, s.subject)
	}
	if sw.verbose {
		sw.block(string(n.msg))
	}
}

// result is the last line: how the message ended up, from the record.
// passedAt is the offset of the first attempt that passed.
func (sw *stepWriter) result(o stepOutcome, start time.Time, passedAt time.Duration, notices int) {
	fmt.Fprintln(sw.w)
	if !o.recorded {
		fmt.Fprintf(sw.w, "result: never deferred, no ledger record; the last verdict: %s\n",
			verdictText(o.attempt.verdict().reply))
		return
	}
	rec := o.record
	tally := fmt.Sprintf("%s, %d notice%s sent", plural(rec.Attempts, "attempt"), notices, pluralS(notices))
	switch rec.State {
	case retry.Expired:
		fmt.Fprintf(sw.w, "result: expired at %s, %s after it was first seen; %s\n",
			formatOffset(rec.ExpiredAt.Sub(start)), formatAge(rec.ExpiredAt.Sub(rec.FirstSeen)), tally)
	case retry.Passed:
		passed := start.Add(passedAt)
		fmt.Fprintf(sw.w, "result: passed at %s, %s after it was first seen; %s\n",
			formatOffset(passedAt), formatAge(passed.Sub(rec.FirstSeen)), tally)
	default:
		fmt.Fprintf(sw.w, "result: still %s at %s, %s after it was first seen; %s\n",
			rec.State, formatOffset(o.at), formatAge(o.now.Sub(rec.FirstSeen)), tally)
	}
}

// stampSeen is the stamp of the first attempt that had one: every later
// stamp must be the same, or a retry no longer matches its first attempt.
type stampSeen struct {
	stamp abi.Stamp
	at    time.Duration
	seen  bool
}

// compare describes the attempt's stamp and how it relates to the first.
func (s *stampSeen) compare(a *attemptResult, rec retry.Record, hasRecord bool, at time.Duration) string {
	st := a.stamp
	prefix := ""
	if !a.stamped {
		if !hasRecord {
			return "none: the message was answered before it was stamped"
		}
		// Refused before stamping (an expired record): the record still
		// names the identity and time its stamp had.
		prefix = "none (refused before stamping); record "
		st = abi.Stamp{ID: rec.ID.String(), FirstSeen: rec.FirstSeen.Unix(), State: abi.StampNew}
	}
	text := prefix + fmt.Sprintf("id=%s, first seen %s", st.ID, time.Unix(st.FirstSeen, 0).UTC().Format(time.RFC3339))
	if st.State != abi.StampNew {
		text += " (" + st.State.String() + ")"
	}
	switch {
	case !s.seen:
		*s = stampSeen{stamp: st, at: at, seen: true}
	case st.ID == s.stamp.ID && st.FirstSeen == s.stamp.FirstSeen:
		text += " (same as at " + formatOffset(s.at) + ")"
	default:
		text += " CHANGED since " + formatOffset(s.at)
	}
	return text
}

// verdictText is a reply on one line: "tempfail 451 4.7.1 Greylisted".
func verdictText(r milter.Reply) string {
	s := r.Action.String()
	if r.Code != 0 {
		s += fmt.Sprintf(" %d %s %s", r.Code, r.Enhanced, r.Text)
	}
	return s
}

// recordText is the ledger's record after the attempt.
func recordText(o stepOutcome) string {
	if !o.recorded {
		return "no record (never deferred)"
	}
	rec := o.record
	s := fmt.Sprintf("%s, %s, age %s", rec.State, plural(rec.Attempts, "attempt"), formatAge(o.now.Sub(rec.FirstSeen)))
	if n := len(rec.Notices); n > 0 {
		s += fmt.Sprintf(", %d notice%s sent", n, pluralS(n))
	}
	return s
}

// noticeSummary is what an admin wants from a notice at a glance.
type noticeSummary struct {
	subject string
	report  string // action and status per recipient: "delayed 4.7.1"
}

// summarizeNotice reads a composed RFC 3464 notice back: its subject, and
// the Action and Status of its delivery-status part.
func summarizeNotice(raw []byte) (noticeSummary, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return noticeSummary{}, err
	}
	var s noticeSummary
	if s.subject, err = (&mail.Header{Header: e.Header}).Subject(); err != nil {
		return noticeSummary{}, fmt.Errorf("subject: %w", err)
	}
	parts := e.MultipartReader()
	if parts == nil {
		return noticeSummary{}, errors.New("not a multipart/report")
	}
	for {
		p, err := parts.NextPart()
		if err == io.EOF {
			return noticeSummary{}, errors.New("no message/delivery-status part")
		}
		if err != nil {
			return noticeSummary{}, err
		}
		if ct, _, _ := p.Header.ContentType(); ct == "message/delivery-status" {
			s.report, err = statusReport(p.Body)
			return s, err
		}
	}
}

// statusReport reads a delivery-status body (RFC 3464 §2.1: the
// per-message fields, then a group per recipient) into "action status",
// once when every recipient has the same, else per recipient.
func statusReport(body io.Reader) (string, error) {
	br := bufio.NewReader(body)
	if _, err := textproto.ReadHeader(br); err != nil {
		return "", fmt.Errorf("delivery-status: %w", err)
	}
	var each []string
	same := true
	for {
		if _, err := br.Peek(1); err != nil {
			break // the groups end with the body
		}
		h, err := textproto.ReadHeader(br)
		if err != nil {
			return "", fmt.Errorf("delivery-status: %w", err)
		}
		if h.Len() == 0 {
			continue
		}
		as := h.Get("Action") + " " + h.Get("Status")
		same = same && (len(each) == 0 || strings.HasPrefix(each[0], as+" "))
		each = append(each, as+" "+strings.TrimPrefix(h.Get("Final-Recipient"), "rfc822; "))
	}
	switch {
	case len(each) == 0:
		return "", errors.New("delivery-status: no recipient")
	case same:
		first := each[0]
		return first[:strings.LastIndexByte(first, ' ')], nil
	}
	return strings.Join(each, ", "), nil
}

// formatOffset writes an offset as -at takes it: "+0", "+40m", "+1d6h".
func formatOffset(d time.Duration) string {
	if d == 0 {
		return "+0"
	}
	return "+" + formatAge(d)
}

// formatAge writes a duration in days, hours, minutes and seconds,
// leaving out the units that are zero: "1d6h", "40m", "1m30s".
func formatAge(d time.Duration) string {
	if d < 0 {
		return "-" + formatAge(-d)
	}
	d = d.Round(time.Second)
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

func plural(n int, word string) string { return fmt.Sprintf("%d %s%s", n, word, pluralS(n)) }

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func angleList(addrs []string) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = "<" + a + ">"
	}
	return strings.Join(out, ", ")
}
