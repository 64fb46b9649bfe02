package mtatest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Mail is a message a test sends with swaks, a real SMTP client.
type Mail struct {
	From   string   // envelope sender; "" sends MAIL FROM:<>
	To     []string // envelope recipients; at least one
	Data   string   // the whole message, headers included; LF or CRLF line ends
	Helo   string   // EHLO name; "" means "client.wasmilter.test"
	Source string   // local source IP such as "127.0.0.2"; "" lets the kernel choose
}

// SendResult is the server's reply to the end of DATA, or, when the
// transaction never got there, the first reply that refused something
// (connect banner, EHLO, MAIL, RCPT or DATA).
type SendResult struct {
	Code       int    // e.g. 250, 451, 550
	Enhanced   string // RFC 3463 status code such as "5.7.1"; "" if absent
	Text       string // the reply text after the codes; lines of a multi-line reply joined by "\n"
	Transcript string // swaks' whole transcript, for failure messages
}

// sendTimeout bounds one swaks run, connection to QUIT.
const sendTimeout = 60 * time.Second

// Send sends m to smtpAddr (host:port) with swaks and returns how the
// server answered. It fails the test only if swaks could not talk to the
// server at all; a refusal is a result, for the test to judge.
func Send(t testing.TB, smtpAddr string, m Mail) SendResult {
	t.Helper()
	Require(t, "swaks")
	args, err := swaksArgs(smtpAddr, m, writeMessageFile(t, m.Data))
	if err != nil {
		t.Fatalf("mtatest: Send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	// swaks' exit status only says whether something was refused, which
	// the transcript says in more detail, so it is not an error here.
	out, runErr := exec.CommandContext(ctx, mustCommand(t, "swaks"), args...).CombinedOutput()
	transcript := string(out)
	res, err := parseTranscript(transcript)
	if err != nil {
		t.Fatalf("mtatest: Send to %s: %v (swaks: %v)\n%s", smtpAddr, err, runErr, transcript)
	}
	return res
}

// writeMessageFile stores the message where swaks can read it; a file
// keeps swaks from interpreting newlines or a leading "@" in the data.
// swaks ends the data with CRLF "." CRLF itself, so one final line end of
// data is dropped: otherwise every message would grow an empty last line.
func writeMessageFile(t testing.TB, data string) string {
	t.Helper()
	data = strings.TrimSuffix(data, "\n")
	data = strings.TrimSuffix(data, "\r")
	path := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	return path
}

// swaksArgs builds swaks' command line for one message.
func swaksArgs(smtpAddr string, m Mail, dataFile string) ([]string, error) {
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %v", smtpAddr, err)
	}
	if len(m.To) == 0 {
		return nil, fmt.Errorf("no recipients")
	}
	from := m.From
	if from == "" {
		from = "<>" // swaks' spelling of the null sender
	}
	helo := m.Helo
	if helo == "" {
		helo = "client.wasmilter.test"
	}
	args := []string{
		"--server", host, "--port", port,
		"--from", from,
		"--to", strings.Join(m.To, ","),
		"--helo", helo,
		"--data", "@" + dataFile,
		"--timeout", strconv.Itoa(int(sendTimeout / time.Second)),
	}
	if m.Source != "" {
		args = append(args, "--local-interface", m.Source)
	}
	return args, nil
}

// swaks prefixes every transcript line: "<- " a server reply, "<~ " one
// over TLS, "<**" a server reply swaks considers a failure, " ->" client
// output, "===" and "***" swaks' own notes.
var replyLine = regexp.MustCompile(`^<(?:-|~|\*\*) +(\d{3})([ -])(.*)$`)

// enhancedCode matches an RFC 3463 status code at the start of reply text.
var enhancedCode = regexp.MustCompile(`^([245]\.\d{1,3}\.\d{1,3})(?: |$)`)

// reply is one complete (possibly multi-line) server reply.
type reply struct {
	code    int
	lines   []string
	failure bool // swaks marked it "<**"
}

// parseTranscript finds the reply to the end of DATA, or else the first
// refusal, in a swaks transcript.
func parseTranscript(transcript string) (SendResult, error) {
	replies, dataAt := splitReplies(transcript)
	// The end-of-DATA reply is the first reply after DATA's 354.
	if dataAt >= 0 && dataAt+1 < len(replies) {
		return resultOf(replies[dataAt+1], transcript), nil
	}
	for _, r := range replies {
		if r.failure || r.code >= 400 {
			return resultOf(r, transcript), nil
		}
	}
	return SendResult{Transcript: transcript}, fmt.Errorf("no end-of-DATA reply and no refusal in the transcript")
}

// splitReplies collects the server replies of a transcript in order and
// reports the index of the 354 that answered DATA (-1 if none).
func splitReplies(transcript string) (replies []reply, dataAt int) {
	dataAt = -1
	var cur *reply
	sc := bufio.NewScanner(strings.NewReader(transcript))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		m := replyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		code, _ := strconv.Atoi(m[1])
		if cur == nil {
			cur = &reply{code: code, failure: strings.HasPrefix(line, "<**")}
		}
		cur.lines = append(cur.lines, m[3])
		if m[2] == " " { // the last line of a reply has a space after the code
			replies = append(replies, *cur)
			if cur.code == 354 && dataAt < 0 {
				dataAt = len(replies) - 1
			}
			cur = nil
		}
	}
	return replies, dataAt
}

// resultOf turns a reply into a SendResult, taking the enhanced status
// code off each line of text.
func resultOf(r reply, transcript string) SendResult {
	res := SendResult{Code: r.code, Transcript: transcript}
	texts := make([]string, 0, len(r.lines))
	for _, line := range r.lines {
		if m := enhancedCode.FindStringSubmatch(line); m != nil {
			if res.Enhanced == "" {
				res.Enhanced = m[1]
			}
			line = strings.TrimPrefix(strings.TrimPrefix(line, m[1]), " ")
		}
		texts = append(texts, line)
	}
	res.Text = strings.Join(texts, "\n")
	return res
}
