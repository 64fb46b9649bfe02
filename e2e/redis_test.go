package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/internal/redistest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
	"github.com/wasmilter/wasmilter/stamp"
)

// mxNode is one MX host: a Postfix and the wasmilter it filters through.
type mxNode struct {
	pf     *mtatest.Postfix
	filter *filter
}

func startNode(t *testing.T, name, redisURL string, sink *mtatest.Sink, clock *manualclock.Clock) mxNode {
	t.Helper()
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	pf := mtatest.StartPostfix(t, mtatest.PostfixConfig{Milter: "unix:" + sock, RelayTo: sink.Addr, NoticeListener: true})
	f := startFilterIn(t, mxConfig(t, mxSetup{sock: sock, noticeAddr: pf.NoticeAddr, store: redisURL, node: name}), t.TempDir(),
		server.Options{Clock: clock.Now})
	return mxNode{pf: pf, filter: f}
}

// TestRedisMessageDeferredOnOneMXPassesOnAnother: two MX hosts, each a
// Postfix with its own wasmilter, one Redis. The message is greylisted by
// MX 1 and retried, after min_delay, at MX 2, which passes it with the stamp
// MX 1 minted: same identity, same first-seen time.
func TestRedisMessageDeferredOnOneMXPassesOnAnother(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	rd := redistest.Start(t)
	sink := mtatest.StartSink(t)
	clock := manualclock.New(time.Now().Truncate(time.Second))
	mx1 := startNode(t, "mx1", rd.URL(), sink, clock)
	mx2 := startNode(t, "mx2", rd.URL(), sink, clock)

	m := mail(t)
	m.From = "someone@elsewhere.example" // not local: no notice to count here
	firstSeen := clock.Now()
	if res := mtatest.Send(t, mx1.pf.SMTPAddr, m); res.Code != 451 || res.Enhanced != "4.7.1" {
		t.Fatalf("MX 1, first attempt: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	clock.Advance(2 * time.Minute)
	if res := mtatest.Send(t, mx2.pf.SMTPAddr, m); res.Code != 451 {
		t.Fatalf("MX 2 before min_delay: %d %s, want 451 (the record is shared)\n%s", res.Code, res.Text, res.Transcript)
	}
	clock.Advance(4 * time.Minute)
	if res := mtatest.Send(t, mx2.pf.SMTPAddr, m); res.Code != 250 {
		t.Fatalf("MX 2 after min_delay: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 1, 30*time.Second)
	values := headerOf(t, got[0].Data).Values(stamp.DefaultHeader)
	if len(values) != 1 {
		t.Fatalf("%d stamps, want 1:\n%s", len(values), got[0].Data)
	}
	codec, _ := stamp.NewCodec("", nil)
	st, err := codec.Parse(values[0])
	if err != nil {
		t.Fatal(err)
	}
	if !st.FirstSeen.Equal(firstSeen) {
		t.Errorf("MX 2's stamp says first seen %s; MX 1 saw it first at %s", st.FirstSeen, firstSeen)
	}
	l, err := retry.OpenRedis(context.Background(), rd.URL(), retry.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec, err := l.Get(context.Background(), st.ID)
	if err != nil {
		t.Fatalf("the shared record of the stamp's id: %v", err)
	}
	if rec.State != retry.Passed || rec.Attempts != 3 {
		t.Errorf("shared record: %s after %d attempts, want passed after 3", rec.State, rec.Attempts)
	}
}

// TestRedisTwoNodesSendEachNoticeOnce: 1,000 deferred records in one
// Redis, swept by two nodes at once, each sending through its own Postfix:
// the mailboxes receive every notice exactly once.
func TestRedisTwoNodesSendEachNoticeOnce(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	rd := redistest.Start(t)
	sink := mtatest.StartSink(t)
	start := time.Now().Truncate(time.Second)
	clock := manualclock.New(start)

	const records = 1000
	seed, err := retry.OpenRedis(context.Background(), rd.URL(), retry.RedisOptions{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	for i := range records {
		sender := fmt.Sprintf("user%04d@example.org", i)
		_, err := seed.Defer(context.Background(), retry.Deferral{
			ID: stamp.Derive(stamp.Facts{Sender: sender, Recipients: []string{"bob@example.net"}}), Sender: sender,
			Recipients: []string{"bob@example.net"},
			Headers:    []retry.Header{{Name: "Subject", Value: fmt.Sprintf("message %d", i)}},
			Attempt: retry.Attempt{At: start, ClientIP: "192.0.2.1",
				Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mx1 := startNode(t, "mx1", rd.URL(), sink, clock)
	mx2 := startNode(t, "mx2", rd.URL(), sink, clock)
	clock.Advance(3 * time.Second) // the first step is due for all of them

	deadline := time.Now().Add(3 * time.Minute)
	for len(sink.Messages()) < records && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // more sweeps by both: no second copy may come
	perSender := map[string]int{}
	for _, m := range sink.Messages() {
		if m.From != "" || len(m.To) != 1 {
			t.Fatalf("unexpected message from %q to %v", m.From, m.To)
		}
		perSender[m.To[0]]++
	}
	for i := range records {
		if n := perSender[fmt.Sprintf("user%04d@example.org", i)]; n != 1 {
			t.Errorf("user%04d received %d notices, want 1", i, n)
		}
	}
	if len(perSender) != records {
		t.Errorf("%d senders notified, want %d", len(perSender), records)
	}
	sent := mx1.filter.srv.Notifier().Stats().Sent + mx2.filter.srv.Notifier().Stats().Sent
	t.Logf("mx1 sent %d, mx2 sent %d", mx1.filter.srv.Notifier().Stats().Sent, mx2.filter.srv.Notifier().Stats().Sent)
	if sent != records {
		t.Errorf("the nodes say they sent %d notices, want %d", sent, records)
	}
}

// TestRedisDownAndBack: Redis is killed while mail flows. Meanwhile the
// configured on_store_error applies (tempfail: 451 4.3.0, nothing
// unrecorded passes); when Redis comes back, wasmilter works again without
// a restart, and a deferral recorded before the kill is still there.
func TestRedisDownAndBack(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	rd := redistest.Start(t)
	sink := mtatest.StartSink(t)
	clock := manualclock.New(time.Now().Truncate(time.Second))
	mx := startNode(t, "mx1", rd.URL(), sink, clock)

	before := mail(t)
	before.From = "someone@elsewhere.example"
	if res := mtatest.Send(t, mx.pf.SMTPAddr, before); res.Code != 451 || res.Enhanced != "4.7.1" {
		t.Fatalf("before the kill: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}

	// Mail keeps coming from 4 clients while Redis is down and back.
	var mu sync.Mutex
	replies := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := mail(t)
				m.From = fmt.Sprintf("load%d.%d@elsewhere.example", w, i)
				res := mtatest.Send(t, mx.pf.SMTPAddr, m)
				mu.Lock()
				replies[fmt.Sprintf("%d %s", res.Code, res.Enhanced)]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	rd.Kill()
	down := mail(t)
	down.From = "down@elsewhere.example"
	res := mtatest.Send(t, mx.pf.SMTPAddr, down)
	if res.Code != 451 || res.Enhanced != "4.3.0" {
		t.Errorf("while Redis is down: %d %s %s, want 451 4.3.0 (on_store_error = tempfail)", res.Code, res.Enhanced, res.Text)
	}
	time.Sleep(2 * time.Second)
	rd.Restart()
	var after mtatest.SendResult
	for range 50 { // the pool reconnects on its own; no restart of wasmilter
		m := mail(t)
		m.From = "after@elsewhere.example"
		if after = mtatest.Send(t, mx.pf.SMTPAddr, m); after.Enhanced == "4.7.1" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if after.Code != 451 || after.Enhanced != "4.7.1" {
		t.Fatalf("after Redis came back: %d %s %s, want greylisting again (451 4.7.1)", after.Code, after.Enhanced, after.Text)
	}
	t.Logf("replies under load: %v", replies)
	for reply := range replies {
		if !strings.HasPrefix(reply, "451 4.7.1") && !strings.HasPrefix(reply, "451 4.3.0") {
			t.Errorf("reply %q under load: only greylisting or the store-failure tempfail may be answered", reply)
		}
	}
	if len(sink.Messages()) != 0 {
		t.Errorf("%d messages passed; nothing unrecorded may pass with on_store_error = tempfail", len(sink.Messages()))
	}

	clock.Advance(6 * time.Minute)
	if res := mtatest.Send(t, mx.pf.SMTPAddr, before); res.Code != 250 {
		t.Errorf("the message deferred before the kill, after min_delay: %d %s %s (its record should have survived)", res.Code, res.Enhanced, res.Text)
	}
}
