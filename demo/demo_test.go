package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/wasmilter/wasmilter/config"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/server"
)

// The demo's short clock: real time, in steps a newcomer can watch.
const (
	minDelay    = 3 * time.Second // the greylist's min_delay
	notifyAfter = 2 * time.Second // the delay policy's only step
	sweepEvery  = 200 * time.Millisecond
	stepTimeout = 30 * time.Second // bound on every wait
	stampHeader = "X-Wasmilter-Stamp"
	partner     = "alice@partner.example" // not greylisted (allow.sender_domains)
	local       = "carol@example.org"     // greylisted, and told about the delay (local_domains)
	recipient   = "bob@example.net"
	totalSteps  = 7
)

// TestDemo is the newcomer demo; see the package comment.
func TestDemo(t *testing.T) {
	if os.Getenv("WASMILTER_DEMO") != "1" && os.Getenv(mtatest.EnvE2E) != "1" {
		t.Skip("the demo runs with WASMILTER_DEMO=1 (make demo), as root with Debian's postfix and swaks")
	}
	// First, so they run last: signals stay caught while everything else
	// is cleaned up, and the report comes after every other cleanup.
	ctx := interruptible(t)
	d := &demo{t: t, ctx: ctx}
	t.Cleanup(d.reportCleanup)
	mtatest.Require(t, mtatest.NeedRoot, "postfix", "postconf", "swaks")

	d.startSink()
	d.startPostfix()
	d.startWasmilter()
	d.sendPartnerMessage()
	minted, m, firstTry := d.sendGreylistedMessage()
	d.waitForNotice(firstTry)
	d.retry(m, minted, firstTry)
	fmt.Println("\nDone. Stopping Postfix and wasmilter and removing their directories ...")
}

// demo holds what the steps start; every field is stopped by a t.Cleanup
// that its helper registered.
type demo struct {
	t       *testing.T
	ctx     context.Context
	stepNum int
	sink    *mtatest.Sink
	postfix *mtatest.Postfix
	log     *syncbuf.Buffer // wasmilter's log, JSON lines
	dirs    []string        // what must be gone after the cleanups
}

// step prints a numbered step; say prints a line under it. They go to
// stdout, where go test -v shows them as they happen.
func (d *demo) step(format string, args ...any) {
	d.checkInterrupted()
	d.stepNum++
	fmt.Printf("\n[%d/%d] %s\n", d.stepNum, totalSteps, fmt.Sprintf(format, args...))
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("      %s\n", fmt.Sprintf(format, args...))
}

// interruptible turns Ctrl-C and SIGTERM into a canceled context: the demo
// stops at its next wait and the cleanups run. Without it the test binary
// would die at once and leave Postfix running.
func interruptible(t *testing.T) context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t.Cleanup(stop)
	return ctx
}

func (d *demo) checkInterrupted() {
	if d.ctx.Err() != nil {
		// A skip, not a failure: the cleanups run either way, and a
		// failure would make mtatest print Postfix's whole log.
		fmt.Println("\n      Interrupted: cleaning up.")
		d.t.Skip("interrupted")
	}
}

// sleep waits d or until the demo is interrupted.
func (d *demo) sleep(dur time.Duration) {
	select {
	case <-d.ctx.Done():
		d.checkInterrupted()
	case <-time.After(dur):
	}
}

func (d *demo) startSink() {
	d.step("Starting an SMTP sink: it plays the next hop and every sender's mailbox.")
	d.sink = mtatest.StartSink(d.t)
	d.say("listening on %s", d.sink.Addr)
}

func (d *demo) startPostfix() {
	sockDir := mtatest.ShortTempDir(d.t)
	d.dirs = append(d.dirs, sockDir)
	sock := filepath.Join(sockDir, "milter.sock")
	d.step("Starting a throwaway Postfix on loopback that filters mail through wasmilter.")
	d.postfix = mtatest.StartPostfix(d.t, mtatest.PostfixConfig{Milter: "unix:" + sock, RelayTo: d.sink.Addr, NoticeListener: true})
	d.dirs = append(d.dirs, d.postfix.Dir)
	d.say("smtpd on %s, with examples/postfix/main.cf's milter settings (smtpd_milters = unix:%s)", d.postfix.SMTPAddr, sock)
	d.say("a second smtpd on %s runs no milters: wasmilter's delay notices go in there", d.postfix.NoticeAddr)
	d.say("everything Postfix accepts is relayed to the sink; its files are in %s", d.postfix.Dir)
}

// config is the demo's wasmilter.toml: the greylist example before the
// stamp, the ledger in dir, and the delay notices on the short clock.
func (d *demo) config(sock string) string {
	return fmt.Sprintf(`
[milter]
listen = "unix:%s"
socket_mode = "0660"
socket_group = "postfix"    # Postfix's smtpd writes the socket through its group
[runtime]
compilation_cache = ""      # in memory: the demo leaves nothing behind
[retry]
store = "bolt:ledger.db"
[admin]
listen = ""
[notify]
sweep_interval = "%s"
smtp = "%s"
hostname = "mx.demo.test"
[notify.policy.config]
notify_after = ["%s"]
local_domains = ["example.org"]
[[plugins]]
name = "greylist"
path = "greylist.wasm"
[plugins.config]
min_delay = "%s"
allow.sender_domains = ["partner.example"]
[[plugins]]
name = "stamp"
path = "builtin:stamp"
`, sock, sweepEvery, d.postfix.NoticeAddr, notifyAfter, minDelay)
}

func (d *demo) startWasmilter() {
	d.step("Starting wasmilter (in this process) with two plugins: greylist, then stamp.")
	d.say("building examples/greylist to WebAssembly (go build, GOOS=wasip1) ...")
	dir := d.t.TempDir()
	d.dirs = append(d.dirs, dir)
	if err := os.WriteFile(filepath.Join(dir, "greylist.wasm"), wasmtest.BuildGo(d.t, "./examples/greylist"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	sock := strings.TrimPrefix(d.postfixMilter(), "unix:")
	cfg, err := config.Parse([]byte(d.config(sock)), "demo.toml", dir)
	if err != nil {
		d.t.Fatalf("the demo's config:\n%v", err)
	}
	d.log = &syncbuf.Buffer{}
	logger := slog.New(slog.NewJSONHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Not d.ctx: an interrupt is seen at the next step, not as a failed build.
	srv, err := server.Build(context.Background(), cfg, server.Options{Logger: logger})
	if err != nil {
		d.t.Fatalf("building wasmilter:\n%v", err)
	}
	ln, err := srv.Listen()
	if err != nil {
		srv.Release()
		d.t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	d.t.Cleanup(func() { stopWasmilter(d.t, srv, served) })
	d.say("milter socket %s (group postfix, mode 0660), retry ledger %s", sock, filepath.Join(dir, "ledger.db"))
	d.say("greylist: min_delay = %q; senders at partner.example are let through", minDelay.String())
	d.say("delay notices: notify_after = [%q], swept every %s, for senders in example.org", notifyAfter.String(), sweepEvery)
}

// postfixMilter is the socket Postfix was told about.
func (d *demo) postfixMilter() string {
	cf, err := os.ReadFile(filepath.Join(d.postfix.Dir, "etc", "main.cf"))
	if err != nil {
		d.t.Fatal(err)
	}
	for _, line := range strings.Split(string(cf), "\n") {
		if v, ok := strings.CutPrefix(line, "smtpd_milters = "); ok {
			return v
		}
	}
	d.t.Fatal("Postfix's main.cf has no smtpd_milters")
	return ""
}

func stopWasmilter(t *testing.T, srv *server.Server, served chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Logf("wasmilter shutdown: %v", err)
	}
	if err := <-served; err != nil && !errors.Is(err, milter.ErrServerClosed) {
		t.Errorf("wasmilter: %v", err)
	}
}

// message is a test message from sender with a Message-ID of its own.
func message(sender, subject string) mtatest.Mail {
	data := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.demo@%s>\r\n\r\nHello from the wasmilter demo.\r\n",
		sender, recipient, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), strings.SplitN(sender, "@", 2)[1])
	return mtatest.Mail{From: sender, To: []string{recipient}, Data: data}
}

func (d *demo) send(m mtatest.Mail) mtatest.SendResult {
	d.checkInterrupted()
	res := mtatest.Send(d.t, d.postfix.SMTPAddr, m)
	d.say("SMTP answer at end of DATA: %d %s %s", res.Code, res.Enhanced, res.Text)
	return res
}

func (d *demo) sendPartnerMessage() {
	d.step("Message 1, from %s to %s: not greylisted.", partner, recipient)
	if res := d.send(message(partner, "a message that passes")); res.Code != 250 {
		d.t.Fatalf("message 1 was not accepted:\n%s", res.Transcript)
	}
	got := d.waitDelivered(partner)
	d.say("delivered to the sink with %s: %s", stampHeader, stampOf(d.t, got))
	d.say("(the stamp is minted once per message: id from what the message carries, t when first seen)")
}

// sendGreylistedMessage returns the stamp wasmilter minted for the
// deferred message, and when the attempt began.
func (d *demo) sendGreylistedMessage() (string, mtatest.Mail, time.Time) {
	d.step("Message 2, from %s to %s: greylisted.", local, recipient)
	m := message(local, "a message that waits")
	began := time.Now()
	res := d.send(m)
	if res.Code != 451 || res.Enhanced != "4.7.1" {
		d.t.Fatalf("message 2 got %d %s, want 451 4.7.1:\n%s", res.Code, res.Enhanced, res.Transcript)
	}
	line := d.logLine(func(l map[string]any) bool {
		return l["msg"] == "message" && l["from"] == local && l["verdict"] == "tempfail"
	})
	d.say("wasmilter wrote the deferral to its retry ledger (synced to disk) before Postfix heard the 451")
	d.say("the stamp minted at this first attempt: %s", line["stamp"])
	d.say("a sending MTA would now queue the message and retry later")
	return fmt.Sprint(line["stamp"]), m, began
}

func (d *demo) waitForNotice(firstTry time.Time) {
	d.step("Waiting for the delay notice to %s (notify_after = %s) ...", local, notifyAfter)
	var notice mtatest.Received
	d.waitFor("a delay notice to "+local, func() bool {
		for _, m := range d.sink.Messages() {
			if m.From == "" && len(m.To) == 1 && m.To[0] == local {
				notice = m
				return true
			}
		}
		return false
	})
	h := header(d.t, notice.Data)
	d.say("%.1fs after the first attempt (ages count from the stamp's first-seen time, in whole seconds),", time.Since(firstTry).Seconds())
	d.say("the sender's mailbox got a notice from <> (RFC 3464):")
	d.say("Subject: %s", h.Get("Subject"))
	for _, field := range []string{"Action", "Status", "Diagnostic-Code", "Will-Retry-Until"} {
		if v := reportField(notice.Data, field); v != "" {
			d.say("%s: %s", field, v)
		}
	}
	d.say("(it went through Postfix's listener without milters, so it met no greylisting)")
}

func (d *demo) retry(m mtatest.Mail, minted string, firstTry time.Time) {
	wait := time.Until(firstTry.Add(minDelay + 300*time.Millisecond))
	d.step("The sender retries once min_delay (%s) has passed since the first attempt.", minDelay)
	if wait > 0 {
		d.say("waiting %.1fs ...", wait.Seconds())
		d.sleep(wait)
	}
	if res := d.send(m); res.Code != 250 {
		d.t.Fatalf("the retry was not accepted:\n%s", res.Transcript)
	}
	got := stampOf(d.t, d.waitDelivered(local))
	d.say("delivered to the sink with %s: %s", stampHeader, got)
	if got != minted {
		d.t.Fatalf("the retry's stamp %q is not the one minted at its first attempt, %q", got, minted)
	}
	d.say("the same stamp as its first attempt: wasmilter found the message's record in the ledger")
	d.say("by its identity (Message-ID, sender, recipients), not by client address or clock")
}

// waitDelivered waits until the sink has a message (not a notice) from sender.
func (d *demo) waitDelivered(sender string) []byte {
	var data []byte
	d.waitFor("the message from "+sender+" at the sink", func() bool {
		for _, m := range d.sink.Messages() {
			if m.From == sender {
				data = m.Data
				return true
			}
		}
		return false
	})
	return data
}

// waitFor polls cond every 50 ms, at most stepTimeout, and stops on Ctrl-C.
func (d *demo) waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(stepTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("no %s after %s\nwasmilter's log:\n%s", what, stepTimeout, d.log)
		}
		d.sleep(50 * time.Millisecond)
	}
}

// logLine waits for the first line of wasmilter's JSON log that match
// accepts. The line may come a little after the SMTP client has its
// answer: the milter writes its reply first, and Postfix's abort of the
// refused message ends the session's record of it.
func (d *demo) logLine(match func(map[string]any) bool) map[string]any {
	var found map[string]any
	d.waitFor("such a line in wasmilter's log", func() bool {
		sc := bufio.NewScanner(strings.NewReader(d.log.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && match(line) {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

func header(t *testing.T, data []byte) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("a message at the sink has no header: %v\n%s", err, data)
	}
	return h
}

func stampOf(t *testing.T, data []byte) string {
	t.Helper()
	h := header(t, data)
	if n := len(h.Values(stampHeader)); n != 1 {
		t.Fatalf("%d %s headers, want 1:\n%s", n, stampHeader, data)
	}
	return h.Get(stampHeader)
}

// reportField finds a field of the notice's delivery-status part; the
// first occurrence is the per-recipient group's, after Reporting-MTA's.
func reportField(data []byte, name string) string {
	for _, line := range strings.Split(string(data), "\r\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			return v
		}
	}
	return ""
}

// reportCleanup runs after every other cleanup and says what was cleaned,
// or what was left behind.
func (d *demo) reportCleanup() {
	var left []string
	for _, dir := range d.dirs {
		if _, err := os.Stat(dir); err == nil {
			left = append(left, dir)
		}
	}
	if len(left) > 0 {
		d.t.Errorf("directories left behind: %v", left)
		return
	}
	fmt.Printf("      Postfix and wasmilter stopped; %d directories removed.\n", len(d.dirs))
	if !d.t.Failed() {
		fmt.Println("\n      Next: README.md (configuration, the ledger, notices), docs/plugins.md (write a policy),")
		fmt.Println("      examples/systemd (run it for real), `wasmilter replay -at` (the same story on a simulated clock).")
	}
}
