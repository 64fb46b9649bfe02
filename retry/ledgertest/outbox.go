package ledgertest

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// The two "nodes" of the outbox tests. They share one store, as nodes
// share a Redis; with an embedded backend they are two goroutines of one
// process under different names, which is all a lease can tell apart.
const (
	nodeA = "mx1.example.org"
	nodeB = "mx2.example.org"
)

const lease = 10 * time.Minute

func (h *harness) claim(id stamp.Identity, step int, node string) (retry.Record, bool) {
	h.Helper()
	rec, won, err := h.l.ClaimNotice(h.ctx, id, step, node, lease, h.clock.Now())
	if err != nil {
		h.Fatalf("ClaimNotice(%s, step %d, %s): %v", id, step, node, err)
	}
	return rec, won
}

// entry returns the stored outbox entry of step, failing if there is none.
func (h *harness) entry(id stamp.Identity, step int) retry.OutboxEntry {
	h.Helper()
	e, ok := h.mustGet(id).OutboxEntry(step)
	if !ok {
		h.Fatalf("%s has no outbox entry for step %d", id, step)
	}
	return e
}

// sameEntry compares entries with time.Time.Equal, whatever time zone or
// representation a backend returns.
func sameEntry(a, b retry.OutboxEntry) bool {
	return a.Until.Equal(b.Until) && a.At.Equal(b.At) &&
		a.Step == b.Step && a.Status == b.Status && a.Node == b.Node && a.Claims == b.Claims && a.Error == b.Error
}

var sent = retry.NoticeOutcome{Status: retry.NoticeSent}

// mustRefuse checks that a claim is refused without error and without
// changing the stored record.
func (h *harness) mustRefuse(what string, id stamp.Identity, step int, node string) {
	h.Helper()
	before := h.mustGet(id)
	rec, won, err := h.l.ClaimNotice(h.ctx, id, step, node, lease, h.clock.Now())
	if err != nil || won {
		h.Fatalf("%s: claim by %s: won %v, err %v; want refused without error", what, node, won, err)
	}
	h.sameRecord(what+": refused claim's answer", before, rec)
	h.sameRecord(what+": refused claim left the record", before, h.mustGet(id))
}

// testNoticeClaimRace: two nodes, each with several sweepers' worth of
// goroutines, claim the same step of the same records at the same time;
// exactly one claim per record wins, and the store names the winner.
func testNoticeClaimRace(h *harness) {
	const records, perNode = 12, 4
	var ids []stamp.Identity
	for range records {
		ids = append(ids, h.inState(retry.Deferred))
	}
	now := h.clock.Now()
	for _, id := range ids {
		var wins atomic.Int32
		var winner atomic.Value
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 2*perNode)
		for g := range 2 * perNode {
			node := []string{nodeA, nodeB}[g%2]
			wg.Go(func() {
				<-start
				_, won, err := h.l.ClaimNotice(h.ctx, id, 1, node, lease, now)
				if err != nil {
					errs <- err
					return
				}
				if won {
					wins.Add(1)
					winner.Store(node)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			h.Errorf("concurrent claim: %v", err)
		}
		if n := wins.Load(); n != 1 {
			h.Fatalf("%s: %d claims of step 1 won at once, want exactly 1", id, n)
		}
		e := h.entry(id, 1)
		want := retry.OutboxEntry{Step: 1, Status: retry.NoticeLeased, Node: winner.Load().(string),
			Until: µs(now.Add(lease)), Claims: 1, At: µs(now)}
		if !sameEntry(e, want) {
			h.Errorf("%s: outbox entry\n got %+v\nwant %+v", id, e, want)
		}
	}
	h.checkIndex()
}

// testNoticeTakeover: a live lease refuses every node, its holder too; once
// it has run out (at Until exactly) another node takes the step over, and
// the former holder's answers no longer count.
func testNoticeTakeover(h *harness) {
	id := h.inState(retry.Held)
	t0 := h.clock.Now()
	if _, won := h.claim(id, 2, nodeA); !won {
		h.Fatal("first claim refused")
	}
	h.clock.Advance(lease - time.Microsecond)
	h.mustRefuse("other node, lease live", id, 2, nodeB)
	h.mustRefuse("holder, lease live", id, 2, nodeA)
	if _, won := h.claim(id, 3, nodeB); !won {
		h.Error("a lease on step 2 refused a claim of step 3")
	}

	h.clock.Advance(time.Microsecond) // exactly t0+lease: the lease has run out
	rec, won := h.claim(id, 2, nodeB)
	if !won {
		h.Fatal("claim after the lease ran out was refused")
	}
	e, _ := rec.OutboxEntry(2)
	if e.Status != retry.NoticeLeased || e.Node != nodeB || e.Claims != 2 || !e.Until.Equal(µs(t0.Add(2*lease))) {
		h.Errorf("after takeover: %+v; want leased by %s, 2 claims, until %v", e, nodeB, t0.Add(2*lease))
	}
	h.sameRecord("takeover's answer", rec, h.mustGet(id))
	if rec.State != retry.Held || !rec.UpdatedAt.Equal(µs(h.clock.Now())) {
		h.Errorf("a claim changed the state (%s) or did not stamp UpdatedAt (%v)", rec.State, rec.UpdatedAt)
	}

	before := h.mustGet(id)
	now := h.clock.Now()
	if _, err := h.l.ReleaseNotice(h.ctx, id, 2, nodeA, now, time.Time{}, "451 try later"); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("release by the former holder: %v, want ErrLeaseLost", err)
	}
	if _, err := h.l.CompleteNotice(h.ctx, id, 2, nodeA, now, retry.NoticeOutcome{Status: retry.NoticeFailed, Error: "550 no"}); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("failed by the former holder: %v, want ErrLeaseLost", err)
	}
	h.sameRecord("answers of a node that lost the lease", before, h.mustGet(id))

	rec, err := h.l.CompleteNotice(h.ctx, id, 2, nodeB, now, sent)
	if err != nil {
		h.Fatalf("complete by the new holder: %v", err)
	}
	if len(rec.Notices) != 1 || rec.Notices[0].Step != 2 {
		h.Errorf("Notices after the step was sent: %+v", rec.Notices)
	}
	h.checkIndex()
}

// testNoticeFinal: a sent or failed step is never claimed again by any
// node at any time; repeating the outcome is harmless, contradicting it is
// refused; only sent notices are listed in Notices.
func testNoticeFinal(h *harness) {
	id := h.inState(retry.Deferred)
	h.claim(id, 1, nodeA)
	at := h.clock.Advance(time.Minute)
	rec, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, at, sent)
	if err != nil {
		h.Fatalf("CompleteNotice: %v", err)
	}
	wantEntry := retry.OutboxEntry{Step: 1, Status: retry.NoticeSent, Node: nodeA, Claims: 1, At: µs(at)}
	if e, _ := rec.OutboxEntry(1); !sameEntry(e, wantEntry) {
		h.Errorf("after sent: entry\n got %+v\nwant %+v", e, wantEntry)
	}
	if n := rec.Notices; len(n) != 1 || n[0].Step != 1 || n[0].Kind != retry.DefaultNoticeKind || !n[0].At.Equal(µs(at)) {
		h.Errorf("after sent: Notices %+v, want step 1, %q, at %v", n, retry.DefaultNoticeKind, µs(at))
	}
	h.sameRecord("CompleteNotice's answer", rec, h.mustGet(id))

	h.clock.Advance(365 * 24 * time.Hour) // no lease, no time makes a sent step claimable
	h.mustRefuse("sent step, same node", id, 1, nodeA)
	h.mustRefuse("sent step, other node", id, 1, nodeB)

	again, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, h.clock.Now(), sent)
	if err != nil {
		h.Errorf("repeating the recorded outcome: %v", err)
	}
	h.sameRecord("repeated CompleteNotice changes nothing", rec, again)
	for name, call := range map[string]func() error{
		"failed after sent": func() error {
			_, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, h.clock.Now(), retry.NoticeOutcome{Status: retry.NoticeFailed})
			return err
		},
		"sent by another node": func() error {
			_, err := h.l.CompleteNotice(h.ctx, id, 1, nodeB, h.clock.Now(), sent)
			return err
		},
		"release after sent": func() error {
			_, err := h.l.ReleaseNotice(h.ctx, id, 1, nodeA, h.clock.Now(), time.Time{}, "")
			return err
		},
	} {
		if err := call(); !errors.Is(err, retry.ErrLeaseLost) {
			h.Errorf("%s: %v, want ErrLeaseLost", name, err)
		}
	}
	h.sameRecord("refused completions left the record", rec, h.mustGet(id))

	// A permanent failure: final too, with the relay's answer on one line,
	// and not a notice the sender got.
	h.claim(id, 2, nodeB)
	rec, err = h.l.CompleteNotice(h.ctx, id, 2, nodeB, h.clock.Now(),
		retry.NoticeOutcome{Status: retry.NoticeFailed, Error: "550-5.1.1 no such user\r\n550 5.1.1 really\x00"})
	if err != nil {
		h.Fatalf("CompleteNotice failed: %v", err)
	}
	if e, _ := rec.OutboxEntry(2); e.Status != retry.NoticeFailed || e.Error != "550-5.1.1 no such user 550 5.1.1 really" {
		h.Errorf("failed entry: %+v", e)
	}
	if len(rec.Notices) != 1 {
		h.Errorf("a failed notice was listed in Notices: %+v", rec.Notices)
	}
	h.clock.Advance(lease)
	h.mustRefuse("failed step", id, 2, nodeA)

	// Later transitions keep what the sender was told.
	d := h.mustDefer(h.deferral(id, h.clock.Now(), 2))
	if len(d.Notices) != 1 || len(d.Outbox) != 2 {
		h.Errorf("Defer dropped notices or outbox: %+v %+v", d.Notices, d.Outbox)
	}
	h.checkIndex()
}

// testNoticeCrash: a node claims, sends (or not) and dies before
// CompleteNotice. The claim survives a restart of the store's user; once
// the lease runs out another node claims the step, so the notice is not
// lost; the restarted node cannot claim it again meanwhile.
func testNoticeCrash(h *harness) {
	id := h.inState(retry.Deferred)
	t0 := h.clock.Now()
	if _, won := h.claim(id, 1, nodeA); !won {
		h.Fatal("claim refused")
	}
	// The crash: no CompleteNotice, no ReleaseNotice; the store is closed
	// and opened again as a restarted node would.
	if err := h.l.Close(); err != nil {
		h.Fatalf("Close: %v", err)
	}
	h.l = h.open(h.clock)
	if e := h.entry(id, 1); e.Status != retry.NoticeLeased || e.Node != nodeA || !e.Until.Equal(µs(t0.Add(lease))) {
		h.Fatalf("after the crash the claim reads %+v", e)
	}
	h.clock.Advance(lease / 2)
	h.mustRefuse("restarted holder, lease live", id, 1, nodeA)
	h.mustRefuse("other node, lease live", id, 1, nodeB)

	h.clock.Advance(lease / 2)
	if _, won := h.claim(id, 1, nodeB); !won {
		h.Fatal("the orphaned claim could not be taken over after its lease")
	}
	if _, err := h.l.CompleteNotice(h.ctx, id, 1, nodeB, h.clock.Now(), sent); err != nil {
		h.Fatalf("CompleteNotice after takeover: %v", err)
	}
	h.clock.Advance(lease)
	h.mustRefuse("sent after takeover", id, 1, nodeA)
	if rec := h.mustGet(id); len(rec.Notices) != 1 || rec.Outbox[0].Claims != 2 {
		h.Errorf("after takeover and send: notices %+v, outbox %+v", rec.Notices, rec.Outbox)
	}
}

// testNoticeLateSent: a node whose send outlived its lease reports it sent
// after another node took the step over. The notice did go out, so it is
// recorded, and the step is final: no third copy. The second node's own
// report then loses.
func testNoticeLateSent(h *harness) {
	id := h.inState(retry.Deferred)
	h.claim(id, 1, nodeA)
	h.clock.Advance(lease)
	if _, won := h.claim(id, 1, nodeB); !won {
		h.Fatal("takeover refused")
	}
	rec, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, h.clock.Now(), sent)
	if err != nil {
		h.Fatalf("late sent from the former holder: %v", err)
	}
	if e, _ := rec.OutboxEntry(1); e.Status != retry.NoticeSent || e.Node != nodeA || len(rec.Notices) != 1 {
		h.Errorf("late sent: entry %+v, notices %+v", e, rec.Notices)
	}
	if _, err := h.l.CompleteNotice(h.ctx, id, 1, nodeB, h.clock.Now(), sent); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("second sent of one step: %v, want ErrLeaseLost", err)
	}
	if n := len(h.mustGet(id).Notices); n != 1 {
		h.Errorf("one step listed %d times in Notices", n)
	}
}

// testNoticeRelease: a temporary failure gives the step back; it is
// claimable by any node from the retry time on, not before.
func testNoticeRelease(h *harness) {
	id := h.inState(retry.Released)
	h.claim(id, 1, nodeA)
	retryAt := h.clock.Now().Add(30 * time.Minute)
	rec, err := h.l.ReleaseNotice(h.ctx, id, 1, nodeA, h.clock.Now(), retryAt, "451 4.3.2 try\r\nlater")
	if err != nil {
		h.Fatalf("ReleaseNotice: %v", err)
	}
	want := retry.OutboxEntry{Step: 1, Status: retry.NoticePending, Node: nodeA, Until: µs(retryAt), Claims: 1,
		Error: "451 4.3.2 try later", At: µs(h.clock.Now())}
	if e, _ := rec.OutboxEntry(1); !sameEntry(e, want) {
		h.Errorf("released entry\n got %+v\nwant %+v", e, want)
	}
	if len(rec.Notices) != 0 {
		h.Errorf("a released notice was listed as sent: %+v", rec.Notices)
	}
	if _, err := h.l.ReleaseNotice(h.ctx, id, 1, nodeA, h.clock.Now(), time.Time{}, ""); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("releasing a step no longer held: %v, want ErrLeaseLost", err)
	}
	if _, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, h.clock.Now(), retry.NoticeOutcome{Status: retry.NoticeFailed}); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("failing a released step: %v, want ErrLeaseLost", err)
	}
	h.clock.Advance(30*time.Minute - time.Microsecond)
	h.mustRefuse("released, retry not due", id, 1, nodeB)
	h.clock.Advance(time.Microsecond)
	rec, won := h.claim(id, 1, nodeB)
	if e, _ := rec.OutboxEntry(1); !won || e.Node != nodeB || e.Claims != 2 || e.Error != want.Error {
		h.Errorf("claim when due: won %v, entry %+v", won, e)
	}
	// Released with no retry time: claimable at once.
	if _, err := h.l.ReleaseNotice(h.ctx, id, 1, nodeB, h.clock.Now(), time.Time{}, "connection refused"); err != nil {
		h.Fatal(err)
	}
	if _, won := h.claim(id, 1, nodeA); !won {
		h.Error("a step released with no retry time was not claimable at once")
	}
}

// testNoticeRefusals: what cannot be claimed or completed, and input that
// is refused before the store is touched.
func testNoticeRefusals(h *harness) {
	now := h.clock.Now()
	for _, s := range retry.States {
		id := h.inState(s)
		before := h.mustGet(id)
		_, won, err := h.l.ClaimNotice(h.ctx, id, 1, nodeA, lease, now)
		switch s {
		case retry.Passed, retry.Expired:
			if !errors.Is(err, retry.ErrTransition) || won {
				h.Errorf("claim on a %s record: won %v, err %v; want ErrTransition", s, won, err)
			}
			h.sameRecord("refused claim on "+string(s), before, h.mustGet(id))
		default:
			if err != nil || !won {
				h.Errorf("claim on a %s record: won %v, err %v", s, won, err)
			}
		}
	}

	// A claim taken before the message passed may still be completed: the
	// notice was sent, and the outbox says so.
	id := h.inState(retry.Deferred)
	h.claim(id, 1, nodeA)
	if _, err := h.l.Pass(h.ctx, id, retry.Attempt{At: now}); err != nil {
		h.Fatal(err)
	}
	if rec, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, now, sent); err != nil || rec.State != retry.Passed || len(rec.Notices) != 1 {
		h.Errorf("completing a claim after the message passed: %v, %+v", err, rec)
	}

	unknown := h.newID()
	if _, _, err := h.l.ClaimNotice(h.ctx, unknown, 1, nodeA, lease, now); !errors.Is(err, retry.ErrNotFound) {
		h.Errorf("claim on an unknown identity: %v, want ErrNotFound", err)
	}
	if _, err := h.l.CompleteNotice(h.ctx, unknown, 1, nodeA, now, sent); !errors.Is(err, retry.ErrNotFound) {
		h.Errorf("complete on an unknown identity: %v, want ErrNotFound", err)
	}
	if _, err := h.l.ReleaseNotice(h.ctx, unknown, 1, nodeA, now, now, ""); !errors.Is(err, retry.ErrNotFound) {
		h.Errorf("release on an unknown identity: %v, want ErrNotFound", err)
	}
	known := h.inState(retry.Deferred)
	if _, err := h.l.CompleteNotice(h.ctx, known, 1, nodeA, now, sent); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("complete of a step never claimed: %v, want ErrLeaseLost", err)
	}
	if _, err := h.l.ReleaseNotice(h.ctx, known, 1, nodeA, now, now, ""); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("release of a step never claimed: %v, want ErrLeaseLost", err)
	}

	claim := func(id stamp.Identity, step int, node string, l time.Duration, at time.Time) error {
		_, _, err := h.l.ClaimNotice(h.ctx, id, step, node, l, at)
		return err
	}
	complete := func(o retry.NoticeOutcome) error {
		_, err := h.l.CompleteNotice(h.ctx, known, 1, nodeA, now, o)
		return err
	}
	for name, err := range map[string]error{
		"claim zero identity":   claim(stamp.Identity{}, 1, nodeA, lease, now),
		"claim step 0":          claim(known, 0, nodeA, lease, now),
		"claim negative step":   claim(known, -1, nodeA, lease, now),
		"claim no node":         claim(known, 1, "", lease, now),
		"claim node with space": claim(known, 1, "mx 1", lease, now),
		"claim node too long":   claim(known, 1, strings.Repeat("n", retry.MaxNodeBytes+1), lease, now),
		"claim no lease":        claim(known, 1, nodeA, 0, now),
		"claim negative lease":  claim(known, 1, nodeA, -time.Second, now),
		"claim no time":         claim(known, 1, nodeA, lease, time.Time{}),
		"complete no status":    complete(retry.NoticeOutcome{}),
		"complete as leased":    complete(retry.NoticeOutcome{Status: retry.NoticeLeased}),
		"complete as pending":   complete(retry.NoticeOutcome{Status: retry.NoticePending}),
		"complete kind CRLF":    complete(retry.NoticeOutcome{Status: retry.NoticeSent, Kind: "a\r\nb"}),
		"complete no time": func() error {
			_, err := h.l.CompleteNotice(h.ctx, known, 1, nodeA, time.Time{}, sent)
			return err
		}(),
		"release step 0": func() error {
			_, err := h.l.ReleaseNotice(h.ctx, known, 0, nodeA, now, now, "")
			return err
		}(),
	} {
		if !errors.Is(err, retry.ErrInvalid) {
			h.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if rec := h.mustGet(known); len(rec.Outbox) != 0 {
		h.Errorf("invalid calls wrote an outbox: %+v", rec.Outbox)
	}
	h.checkIndex()
}

// testNoticeBound: a policy that keeps inventing steps is refused once the
// outbox is full, while the steps it holds keep working.
func testNoticeBound(h *harness) {
	id := h.inState(retry.Deferred)
	for step := 1; step <= retry.MaxOutbox; step++ {
		if _, won := h.claim(id, retry.MaxOutbox+1-step, nodeA); !won { // backwards: the outbox keeps step order
			h.Fatalf("claim of step %d refused", step)
		}
	}
	before := h.mustGet(id)
	for i, e := range before.Outbox {
		if e.Step != i+1 {
			h.Fatalf("outbox not in step order: entry %d is step %d", i, e.Step)
		}
	}
	if _, _, err := h.l.ClaimNotice(h.ctx, id, retry.MaxOutbox+1, nodeA, lease, h.clock.Now()); !errors.Is(err, retry.ErrTransition) {
		h.Errorf("claim past MaxOutbox: %v, want ErrTransition", err)
	}
	h.sameRecord("a refused claim past the bound", before, h.mustGet(id))
	h.clock.Advance(lease)
	if _, won := h.claim(id, retry.MaxOutbox, nodeB); !won {
		h.Error("a full outbox refused a takeover of a step it holds")
	}
}

// testNoticeReservedSteps: the "no longer delayed" step is claimable on a
// passed record only, the final step only while the message waits; a
// suppressed step is final and counts as done like a sent one.
func testNoticeReservedSteps(h *harness) {
	for _, s := range retry.States {
		id := h.inState(s)
		_, won, err := h.l.ClaimNotice(h.ctx, id, retry.ClearedNoticeStep, nodeA, lease, h.clock.Now())
		if s == retry.Passed {
			if err != nil || !won {
				h.Errorf("cleared step on a passed record: won %v, err %v", won, err)
			}
			continue
		}
		if !errors.Is(err, retry.ErrTransition) || won {
			h.Errorf("cleared step on a %s record: won %v, err %v; want ErrTransition", s, won, err)
		}
	}
	passed := h.inState(retry.Passed)
	if _, _, err := h.l.ClaimNotice(h.ctx, passed, retry.FinalNoticeStep, nodeA, lease, h.clock.Now()); !errors.Is(err, retry.ErrTransition) {
		h.Errorf("final step on a passed record: %v, want ErrTransition", err)
	}
	if _, _, err := h.l.ClaimNotice(h.ctx, passed, retry.ClearedNoticeStep+1, nodeA, lease, h.clock.Now()); !errors.Is(err, retry.ErrInvalid) {
		h.Errorf("a step past the reserved ones: %v, want ErrInvalid", err)
	}

	id := h.inState(retry.Deferred)
	h.claim(id, 1, nodeA)
	suppressed := retry.NoticeOutcome{Status: retry.NoticeSuppressed, Error: "rate limit"}
	if _, err := h.l.CompleteNotice(h.ctx, id, 1, nodeB, h.clock.Now(), suppressed); !errors.Is(err, retry.ErrLeaseLost) {
		h.Errorf("suppressed by a node that does not hold the step: %v, want ErrLeaseLost", err)
	}
	rec, err := h.l.CompleteNotice(h.ctx, id, 1, nodeA, h.clock.Now(), suppressed)
	if err != nil {
		h.Fatalf("suppress: %v", err)
	}
	if e, _ := rec.OutboxEntry(1); e.Status != retry.NoticeSuppressed || e.Error != "rate limit" || len(rec.Notices) != 0 {
		h.Errorf("suppressed step: %+v, notices %v", e, rec.Notices)
	}
	h.mustRefuse("a suppressed step", id, 1, nodeB)
	h.claim(id, 2, nodeA)
	h.clock.Advance(time.Second)
	rec, err = h.l.CompleteNotice(h.ctx, id, 2, nodeA, h.clock.Now(), sent)
	if err != nil {
		h.Fatal(err)
	}
	if got := rec.DelayStepsDone(); got != 2 {
		h.Errorf("DelayStepsDone after a suppressed and a sent step: %d, want 2", got)
	}
	if !rec.LastNotice().Equal(h.mustGet(id).Notices[0].At) || rec.LastNotice().IsZero() {
		h.Errorf("LastNotice %v, notices %+v", rec.LastNotice(), rec.Notices)
	}
	h.claim(id, retry.FinalNoticeStep, nodeA)
	if _, err := h.l.CompleteNotice(h.ctx, id, retry.FinalNoticeStep, nodeA, h.clock.Now(), retry.NoticeOutcome{Status: retry.NoticeSent, Kind: "failed"}); err != nil {
		h.Fatal(err)
	}
	if got := h.mustGet(id).DelayStepsDone(); got != 2 {
		h.Errorf("the final step counted as a policy step: DelayStepsDone %d, want 2", got)
	}
	h.checkIndex()
}

// testAuthUser: the login name of an authenticated attempt is kept, and a
// later attempt without one does not erase it.
func testAuthUser(h *harness) {
	id := h.newID()
	d := h.deferral(id, h.clock.Now(), 0)
	d.AuthUser = "alice"
	if rec := h.mustDefer(d); rec.AuthUser != "alice" {
		h.Fatalf("created record has AuthUser %q, want alice", rec.AuthUser)
	}
	h.mustDefer(h.deferral(id, h.clock.Now().Add(time.Minute), 1))
	if got := h.mustGet(id).AuthUser; got != "alice" {
		h.Errorf("an unauthenticated retry changed AuthUser to %q", got)
	}
	d = h.deferral(id, h.clock.Now().Add(2*time.Minute), 2)
	d.AuthUser = "alice2"
	h.mustDefer(d)
	if got := h.mustGet(id).AuthUser; got != "alice2" {
		h.Errorf("AuthUser %q after an attempt by alice2", got)
	}
	bad := h.deferral(h.newID(), h.clock.Now(), 0)
	bad.AuthUser = "eve\r\nX-Injected: 1"
	if _, err := h.l.Defer(h.ctx, bad); !errors.Is(err, retry.ErrInvalid) {
		h.Errorf("a login name with CRLF: %v, want ErrInvalid", err)
	}
}
