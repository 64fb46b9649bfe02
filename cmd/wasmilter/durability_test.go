package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/admin"
	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Knobs of TestKill9UnderDeferralStormLosesNoDeferral.
const (
	// stormSessions is how many MTA sessions defer messages at once: enough
	// that deferrals share bbolt commits, so the batched path (where one
	// session could be answered on another's commit) is under test too;
	// few enough for two cores.
	stormSessions = 8
	// kill9Rounds is the 20 kills, about 15 s on two cores (a
	// restart costs ~0.4 s), so CI runs all of it; kill9SoakRounds, about
	// 70 s, is for WASMILTER_SOAK=1.
	kill9Rounds     = 20
	kill9SoakRounds = 200
	// The kill comes this long after the round's first acknowledged
	// deferral, drawn uniformly: the storm is at full speed by then, and
	// the kill lands at a different point of the commit cycle every round.
	killDelayMin = 20 * time.Millisecond
	killDelayMax = 400 * time.Millisecond
	// envKill9Seed replays the kill delays of an earlier run (its seed is
	// logged) when a failure needs reproducing.
	envKill9Seed = "WASMILTER_KILL9_SEED"
)

// TestKill9UnderDeferralStormLosesNoDeferral is the server-level proof of
// "durable before answered": the real binary, the milter protocol, a plugin
// that defers, the pipeline and the bbolt ledger, killed with SIGKILL again
// and again while several MTA sessions are being deferred. Every message
// whose 4xx reached the MTA must have its deferred record afterwards; the
// messages in flight when the server died were never answered, so they may
// or may not be in the ledger, and the test does not care.
//
// SIGKILL loses everything the process holds in memory but nothing the
// kernel already has, so this checks the order of operations (commit, then
// answer), not the disk's honesty about fsync; see docs/RELIABILITY.md.
func TestKill9UnderDeferralStormLosesNoDeferral(t *testing.T) {
	rounds := kill9Rounds
	if os.Getenv("WASMILTER_SOAK") == "1" {
		rounds = kill9SoakRounds
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envKill9Seed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envKill9Seed, s, err)
		}
	}
	t.Logf("kill delays: %s=%d", envKill9Seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))

	dir := t.TempDir()
	plugin := filepath.Join(dir, "tempfail.wasm")
	if err := os.WriteFile(plugin, wasmtest.BuildGo(t, "./testdata/plugins/tempfail"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := &durableServer{bin: wasmilterBinary(t), dir: dir, sock: filepath.Join(dir, "milter.sock"), plugin: plugin}

	var acked []stormMessage
	var sent int
	var stormTime time.Duration
	for round := 1; round <= rounds; round++ {
		p, _ := srv.start(t)
		delay := killDelayMin + time.Duration(rng.Int64N(int64(killDelayMax-killDelayMin)+1))
		r := runStormRound(t, srv.sock, round, p, delay)
		acked = append(acked, r.acked...)
		sent += r.sent
		stormTime += r.duration
		if t.Failed() {
			t.Fatalf("round %d went wrong before or apart from the kill; server log:\n%s", round, p.logs)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no deferral was acknowledged: the storm never ran")
	}

	// The file itself, as the last kill left it.
	inFile, lost := checkLedgerFile(t, filepath.Join(dir, "ledger.db"), acked)
	t.Logf("rounds %d, kills %d, sessions %d, messages sent %d, deferrals acknowledged %d, lost %d",
		rounds, rounds, stormSessions, sent, len(acked), lost)
	if lost > 0 {
		t.Fatalf("lost %d of %d acknowledged deferrals", lost, len(acked))
	}

	// Every other record is a message in flight at a kill: deferred and
	// committed, but the server died before its answer went out. A session
	// has at most one such message per kill; more would mean records the
	// storm never caused.
	if unanswered := inFile - len(acked); unanswered > stormSessions*rounds {
		t.Errorf("the ledger holds %d deferred records not acknowledged to the MTA; at most %d messages were in flight at the kills",
			unanswered, stormSessions*rounds)
	}

	// And through a server restarted on it, as an administrator sees it.
	p, adminAddr := srv.start(t)
	served := checkServedQueue(t, adminAddr, acked, inFile)
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done

	t.Logf("records in the ledger %d (served after restart %d): %d deferred but killed before the answer went out",
		inFile, served, inFile-len(acked))
	t.Logf("deferral rate %.0f/s acknowledged over %v of storm", float64(len(acked))/stormTime.Seconds(), stormTime.Round(time.Millisecond))
}

// durableServer starts `wasmilter serve` again and again in one directory,
// so the ledger and the compilation cache outlive every kill. (The helpers
// of serve_test.go take a fresh directory each time.)
type durableServer struct {
	bin, dir, sock, plugin string
}

// start writes the config with a fresh admin port (another process may have
// taken the last one while the server was dead), starts the server and
// waits until it accepts milter connections. The compilation cache is on,
// as in production, so a restart costs milliseconds, not a recompile.
func (s *durableServer) start(t *testing.T) (*process, string) {
	t.Helper()
	adminAddr := freeLoopbackAddr(t)
	cfg := writeFile(t, s.dir, "w.toml", fmt.Sprintf(`[milter]
listen = "unix:%s"
shutdown_timeout = "2s"
[runtime]
compilation_cache = "cache"
[admin]
listen = %q
[retry]
store = "bolt:ledger.db"
[[plugins]]
name = "grey"
path = %q
`, s.sock, adminAddr, s.plugin))
	return startServeProcess(t, s.bin, cfg, s.sock), adminAddr
}

// stormMessage is one message of the storm and the identity the server
// derives for it.
type stormMessage struct {
	id         stamp.Identity
	sender     string
	recipients []string
	header     textproto.Header
}

// newStormMessage builds message i of session w in round round. The
// Message-ID is unique over the whole test, so each acknowledged deferral
// is its own record with exactly one attempt.
func newStormMessage(round, w, i int) stormMessage {
	m := stormMessage{
		sender: fmt.Sprintf("<storm-%d@Example.ORG>", w),
		// Out of order and with a mixed-case domain: the server's
		// normalisation, not the test's spelling, decides the identity.
		recipients: []string{"<zoe@example.net>", "<bob@EXAMPLE.net>"},
	}
	m.header.Add("Message-Id", fmt.Sprintf("<kill9.r%d.s%d.m%d@storm.example.org>", round, w, i))
	m.header.Add("From", "storm@example.org")
	m.header.Add("Subject", fmt.Sprintf("storm %d/%d/%d", round, w, i))
	m.header.Add("X-Test-Tempfail", "yes")
	// The identity as pipeline.identify computes it: the envelope as the MTA
	// sent it, the header fields in the order they arrived.
	var fields []stamp.Field
	for f := m.header.Fields(); f.Next(); {
		fields = append(fields, stamp.Field{Name: f.Key(), Value: f.Value()})
	}
	m.id = stamp.Derive(stamp.Facts{Sender: m.sender, Recipients: m.recipients, Headers: fields})
	return m
}

// stormResult is what one round saw.
type stormResult struct {
	acked    []stormMessage // deferrals whose 4xx the MTA received
	sent     int            // messages whose MAIL FROM was sent
	duration time.Duration  // from the server's readiness to the kill
}

// runStormRound runs stormSessions MTA sessions against the server until
// delay after the first acknowledged deferral, then kills the server with
// SIGKILL and waits for every session to notice.
func runStormRound(t *testing.T, sock string, round int, p *process, delay time.Duration) stormResult {
	t.Helper()
	var (
		mu       sync.Mutex
		res      stormResult
		killed   atomic.Bool
		firstAck = make(chan struct{})
		onceAck  sync.Once
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := range stormSessions {
		wg.Go(func() {
			err := stormSession(sock, round, w, &sent, func(m stormMessage) {
				mu.Lock()
				res.acked = append(res.acked, m)
				mu.Unlock()
				onceAck.Do(func() { close(firstAck) })
			})
			// Before the kill every error is a failure of the server; after
			// it, every session must end in an error (the server is gone).
			if !killed.Load() {
				t.Errorf("round %d, session %d, before the kill: %v", round, w, err)
			}
		})
	}
	select {
	case <-firstAck:
	case <-p.done:
		t.Errorf("round %d: the server exited by itself: %v", round, p.err)
	case <-time.After(30 * time.Second):
		t.Errorf("round %d: no deferral acknowledged within 30s", round)
	}
	time.Sleep(delay)
	killed.Store(true)
	p.cmd.Process.Signal(syscall.SIGKILL)
	res.duration = time.Since(start)
	<-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("round %d: the server did not die of SIGKILL: %v", round, p.err)
	}
	// A dead server closes every socket, so the sessions fail promptly;
	// their read timeout bounds this if not.
	wg.Wait()
	res.sent = int(sent.Load())
	return res
}

// stormSession is one MTA connection deferring messages until the server
// dies: MAIL, two RCPTs, the header, the 4xx at end of header, an abort
// (as Postfix sends before the next MAIL FROM), and again. ack is called
// only once the 4xx has been read off the socket, that is once the MTA
// has been told: the claim under test is about exactly those messages.
// It returns the error that ended the session, never nil.
func stormSession(sock string, round, w int, sent *atomic.Int64, ack func(stormMessage)) error {
	c := gomilter.NewClientWithOptions("unix", sock, gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader,
	})
	s, err := c.Session()
	if err != nil {
		return fmt.Errorf("milter session: %w", err)
	}
	defer s.Close()
	for i := 0; ; i++ {
		m := newStormMessage(round, w, i)
		sent.Add(1)
		if act, err := s.Mail(m.sender, nil); err != nil || act.Code != gomilter.ActContinue {
			return fmt.Errorf("message %d: MAIL FROM: %+v %w", i, act, err)
		}
		for _, r := range m.recipients {
			if act, err := s.Rcpt(r, nil); err != nil || act.Code != gomilter.ActContinue {
				return fmt.Errorf("message %d: RCPT TO %s: %+v %w", i, r, act, err)
			}
		}
		act, err := s.Header(m.header)
		if err != nil {
			return fmt.Errorf("message %d: header: %w", i, err)
		}
		if act.Code != gomilter.ActReplyCode || act.SMTPCode != 451 {
			return fmt.Errorf("message %d: want the plugin's 451 at end of header, got %+v", i, act)
		}
		ack(m)
		if err := s.Abort(); err != nil {
			return fmt.Errorf("message %d: abort: %w", i, err)
		}
	}
}

// checkLedgerFile opens the ledger the last kill left and checks that every
// acknowledged deferral has its record, deferred, with an attempt and the
// message's envelope. It returns how many deferred records the file holds
// and how many acknowledged deferrals are missing or wrong there.
func checkLedgerFile(t *testing.T, path string, acked []stormMessage) (records, lost int) {
	t.Helper()
	l, err := retry.OpenBolt(path, retry.BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("opening the ledger after the last kill: %v", err)
	}
	defer l.Close()
	ctx := context.Background()
	for _, m := range acked {
		rec, err := l.Get(ctx, m.id)
		if err != nil {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged deferral %s (%s) lost: %v", m.id, m.header.Get("Message-Id"), err)
			}
			continue
		}
		want := make([]string, len(m.recipients))
		for i, r := range m.recipients {
			want[i] = stamp.NormalizeAddress(r)
		}
		got := make([]string, len(rec.Recipients))
		for i, r := range rec.Recipients {
			got[i] = stamp.NormalizeAddress(r)
		}
		slices.Sort(want)
		slices.Sort(got)
		if rec.State != retry.Deferred || rec.Attempts < 1 ||
			stamp.NormalizeAddress(rec.Sender) != stamp.NormalizeAddress(m.sender) || !slices.Equal(got, want) {
			lost++
			t.Errorf("acknowledged deferral %s (%s): record state %s, %d attempts, sender %q, recipients %q",
				m.id, m.header.Get("Message-Id"), rec.State, rec.Attempts, rec.Sender, rec.Recipients)
		}
	}
	all, err := l.List(ctx, retry.Filter{State: retry.Deferred, Limit: len(acked) + 1<<20})
	if err != nil {
		t.Fatal(err)
	}
	return len(all), lost
}

// checkServedQueue asks the restarted server, through `wasmilter queue
// list`, for its deferred records and checks that every acknowledged
// deferral is among them and that it serves what the file holds. It
// returns how many it served.
func checkServedQueue(t *testing.T, adminAddr string, acked []stormMessage, inFile int) int {
	t.Helper()
	code, out, errOut := wasmctl(t, "queue", "list", "-admin", adminAddr, "-state", "deferred",
		"-limit", strconv.Itoa(inFile+1000), "-json")
	if code != 0 {
		t.Fatalf("queue list after the last restart: exit %d\n%s", code, errOut)
	}
	var recs []admin.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("queue list -json: %v", err)
	}
	served := make(map[string]bool, len(recs))
	for _, r := range recs {
		served[r.ID] = true
	}
	for _, m := range acked {
		if !served[m.id.String()] {
			t.Fatalf("the restarted server does not list acknowledged deferral %s (%s)", m.id, m.header.Get("Message-Id"))
		}
	}
	if len(recs) != inFile {
		t.Fatalf("the restarted server lists %d deferred records, the file holds %d", len(recs), inFile)
	}
	return len(recs)
}
