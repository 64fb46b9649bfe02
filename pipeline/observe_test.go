package pipeline

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
)

// countingObserver is an Observer that keeps its counts in a map.
type countingObserver struct {
	mu          sync.Mutex
	open, total int
	messages    map[string]int // "stage/verdict"
	storeErrors map[string]int
}

type countingCounter struct {
	o   *countingObserver
	key string
}

func (c countingCounter) Inc() {
	c.o.mu.Lock()
	c.o.messages[c.key]++
	c.o.mu.Unlock()
}

func newCountingObserver() *countingObserver {
	return &countingObserver{messages: map[string]int{}, storeErrors: map[string]int{}}
}

func (o *countingObserver) SessionOpened() { o.mu.Lock(); o.open++; o.total++; o.mu.Unlock() }
func (o *countingObserver) SessionClosed() { o.mu.Lock(); o.open--; o.mu.Unlock() }
func (o *countingObserver) MessageCounter(stage, verdict string) Counter {
	return countingCounter{o, stage + "/" + verdict}
}
func (o *countingObserver) StoreError(op string) { o.mu.Lock(); o.storeErrors[op]++; o.mu.Unlock() }

// syncBuffer collects log output from any goroutine.
type syncBuffer struct{ syncbuf.Buffer }

// lines returns the JSON log lines whose msg is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// observedRig is the ledger rig with an observer and JSON logs at INFO.
func observedRig(t *testing.T) (*ledgerRig, *countingObserver, *syncBuffer, retry.Ledger) {
	t.Helper()
	obs, logs := newCountingObserver(), &syncBuffer{}
	r := newLedgerRigWith(t, func(o *Options) {
		o.Observer = obs
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	return r, obs, logs, r.ledger
}

// TestObserverCountsEveryOutcome: each message is counted once, at the
// stage and with the verdict that ended it, whether it ended at end of
// message or by the milter server's Abort; sessions open and close.
func TestObserverCountsEveryOutcome(t *testing.T) {
	r, obs, _, l := observedRig(t)
	r.send(t, deferMe)                           // headers/tempfail
	r.now = r.now.Add(10 * time.Minute)          //
	r.send(t)                                    // the retry: message/pass
	r.send(t, [2]string{"X-Scripted", "reject"}) // headers/reject: the ledger passed it, the plugin did not

	s := r.p.NewOfflineSession(macros{"i": "QACCEPT"})
	msg{from: "accept@example.org", rcpts: []string{"bob@example.net"}, headers: plainHeaders("acc")}.send(t, s) // mail/accept
	s.Mail("carol@example.org", nil)
	s.Rcpt("dave@example.net", nil)
	s.Abort() // rcpt/aborted
	s.Close()

	l.Close() // the ledger fails: headers stage answered by the ledger policy
	r.send(t)

	want := map[string]int{"headers/tempfail": 1, "message/pass": 1, "headers/reject": 1, "mail/accept": 1,
		"rcpt/aborted": 1, "ledger/tempfail": 1}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for k, n := range want {
		if obs.messages[k] != n {
			t.Errorf("messages[%s] = %d, want %d (all: %v)", k, obs.messages[k], n, obs.messages)
		}
	}
	total := 0
	for _, n := range obs.messages {
		total += n
	}
	if total != 6 {
		t.Errorf("%d messages counted, want 6 (each once): %v", total, obs.messages)
	}
	if obs.open != 0 || obs.total != 5 {
		t.Errorf("sessions open %d total %d, want 0 and 5", obs.open, obs.total)
	}
	if obs.storeErrors["get"] != 1 {
		t.Errorf("store errors %v, want one failed get", obs.storeErrors)
	}
}

// TestDeferralLogLine: a deferral is logged at INFO with the MTA's queue
// ID, the identity and the stamp; a plain pass of a new message is not
// logged at INFO (it is a DEBUG line).
func TestDeferralLogLine(t *testing.T) {
	r, _, logs, _ := observedRig(t)
	r.send(t, deferMe)
	s := r.p.NewOfflineSession(macros{"i": "QFRESH"})
	msg{from: "alice@example.org", rcpts: []string{"bob@example.net"}, headers: plainHeaders("fresh")}.send(t, s)
	s.Close()

	lines := logs.lines(t, "message")
	if len(lines) != 1 {
		t.Fatalf("%d INFO message lines, want 1 (the deferral; the new message's pass is DEBUG): %v", len(lines), lines)
	}
	l := lines[0]
	id := identityOfLedgerMessage().String()
	for k, want := range map[string]any{"level": "INFO", "queue_id": "Q" + fixedNow.Format("150405"), "identity": id,
		"stage": "headers", "verdict": "tempfail", "recorded": true} {
		if l[k] != want {
			t.Errorf("deferral line %s = %v, want %v\n%v", k, l[k], want, l)
		}
	}
	if st, _ := l["stamp"].(string); !strings.Contains(st, "id="+id) {
		t.Errorf("deferral line stamp %q does not carry the identity %s", st, id)
	}
}

// TestLogAttrsNameTheMessage: what the plugin host adds to its lines.
func TestLogAttrsNameTheMessage(t *testing.T) {
	s := newPipeline(t).newSession(macros{"i": "QATTR"})
	defer s.Close()
	s.Mail("alice@example.org", nil)
	if got := attrKeys(s.LogAttrs()); got != "queue_id" {
		t.Errorf("at MAIL: %s, want only queue_id (identity and stamp are not known yet)", got)
	}
	s.Rcpt("bob@example.net", nil)
	for _, h := range plainHeaders("attrs") {
		s.Header(h[0], h[1])
	}
	if r := s.EndOfHeaders(); r.Action != milter.Continue {
		t.Fatalf("end of header: %+v", r)
	}
	if got := attrKeys(s.LogAttrs()); got != "queue_id,identity,stamp" {
		t.Errorf("after end of header: %s", got)
	}
}

func attrKeys(attrs []slog.Attr) string {
	keys := make([]string, len(attrs))
	for i, a := range attrs {
		keys[i] = a.Key
	}
	return strings.Join(keys, ",")
}

// TestQueueIDArrivesLate: Postfix assigns the queue ID at the first
// accepted recipient, so macro i may first come with RCPT; the message's
// log lines and ledger attempts still carry it.
func TestQueueIDArrivesLate(t *testing.T) {
	m := macros{}
	s := newPipeline(t).newSession(m)
	defer s.Close()
	s.Mail("alice@example.org", nil)
	if s.ev.QueueID != "" {
		t.Fatalf("queue ID %q before the MTA sent one", s.ev.QueueID)
	}
	m["i"] = "3F2A61C2B5"
	s.Rcpt("bob@example.net", nil)
	if got := attrKeys(s.LogAttrs()); got != "queue_id" || s.ev.QueueID != "3F2A61C2B5" {
		t.Errorf("after RCPT with macro i: attrs %s, queue ID %q", got, s.ev.QueueID)
	}
}
