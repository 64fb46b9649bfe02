package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Opener opens a ledger on one store with the given clock. Every call on
// the same Opener opens the same store: that is how the suite checks what
// survives a close.
type Opener func(clock *Clock) retry.Ledger

// Backend returns an Opener on a new, empty store for test t, and arranges
// for its ledgers to be closed and the store removed when t ends.
type Backend func(t *testing.T) Opener

// Run runs the whole suite against a backend.
func Run(t *testing.T, backend Backend) {
	tests := []struct {
		name string
		fn   func(*harness)
	}{
		{"DeferCreatesRecord", testDeferCreates},
		{"DeferKeepsStampTime", testDeferKeepsStampTime},
		{"DeferAddsAttempts", testDeferAddsAttempts},
		{"HistoryIsBounded", testHistoryBound},
		{"HeadersAreBounded", testHeaderBound},
		{"Transitions", testTransitions},
		{"UnknownIdentity", testNotFound},
		{"InvalidInput", testInvalidInput},
		{"ExpireIsFinalAndToldOnce", testExpire},
		{"RepeatedAdminActionsChangeNothing", testIdempotentAdmin},
		{"ListOrderCursorFilter", testList},
		{"Purge", testPurge},
		{"ConcurrentSameIdentity", testConcurrentSame},
		{"ConcurrentCreation", testConcurrentCreation},
		{"ConcurrentMixed", testConcurrentMixed},
		{"ReopenSeesEverything", testReopen},
		{"ClosedLedger", testClosed},
		{"CanceledContext", testCanceled},
		{"NoticeClaimRace", testNoticeClaimRace},
		{"NoticeLeaseTakeover", testNoticeTakeover},
		{"NoticeCompleteIsFinal", testNoticeFinal},
		{"NoticeCrashBeforeComplete", testNoticeCrash},
		{"NoticeLateSentCounts", testNoticeLateSent},
		{"NoticeReleaseRetriesLater", testNoticeRelease},
		{"NoticeRefusals", testNoticeRefusals},
		{"NoticeOutboxIsBounded", testNoticeBound},
		{"NoticeReservedSteps", testNoticeReservedSteps},
		{"AuthUser", testAuthUser},
		{"SweepVisitsSweptStates", testSweepVisits},
		{"SweepRecordMovesBetweenStates", testSweepMove},
		{"SweepCopesWithChanges", testSweepChanges},
		{"SweepFailuresAndCancel", testSweepFailures},
		{"SweepRun", testSweepRun},
		{"TwoSweepersNotifyOnce", testTwoSweepers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := backend(t)
			clock := NewClock()
			h := &harness{T: t, clock: clock, open: open, l: open(clock), ctx: context.Background()}
			tc.fn(h)
		})
	}
}

// harness holds one test's ledger and builds what the tests need.
type harness struct {
	*testing.T
	clock *Clock
	open  Opener
	l     retry.Ledger
	ctx   context.Context
	seq   int
}

// newID derives a real message identity, distinct for every call.
func (h *harness) newID() stamp.Identity {
	h.seq++
	return stamp.Derive(stamp.Facts{
		Sender:     fmt.Sprintf("sender%d@example.org", h.seq),
		Recipients: []string{"rcpt@example.net"},
		Headers:    []stamp.Field{{Name: "Message-ID", Value: fmt.Sprintf("<%d.%s@example.org>", h.seq, h.Name())}},
	})
}

var greylisted = retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted, try again later"}

func attemptAt(at time.Time, n int) retry.Attempt {
	return retry.Attempt{At: at, QueueID: fmt.Sprintf("Q%04d", n), ClientIP: "192.0.2.7", Helo: "mx.example.org", Reason: greylisted}
}

func (h *harness) deferral(id stamp.Identity, at time.Time, n int) retry.Deferral {
	return retry.Deferral{
		ID: id, Attempt: attemptAt(at, n),
		Sender: "alice@example.org", Recipients: []string{"bob@example.net", "carol@example.net"},
		Headers: []retry.Header{{Name: "Subject", Value: "hello"}, {Name: "Message-ID", Value: "<1@example.org>"}},
	}
}

func (h *harness) mustDefer(d retry.Deferral) retry.Record {
	h.Helper()
	rec, err := h.l.Defer(h.ctx, d)
	if err != nil {
		h.Fatalf("Defer: %v", err)
	}
	return rec
}

func (h *harness) mustGet(id stamp.Identity) retry.Record {
	h.Helper()
	rec, err := h.l.Get(h.ctx, id)
	if err != nil {
		h.Fatalf("Get %s: %v", id, err)
	}
	return rec
}

var expiredReason = retry.Reason{Code: 550, Enhanced: "5.4.7", Text: "Message expired"}

// inState makes a new record and brings it to state s by the public API.
func (h *harness) inState(s retry.State) stamp.Identity {
	h.Helper()
	id := h.newID()
	h.bring(id, s)
	return id
}

// bring makes a record for the new identity id and brings it to state s.
func (h *harness) bring(id stamp.Identity, s retry.State) {
	h.Helper()
	h.mustDefer(h.deferral(id, h.clock.Now(), 0))
	var err error
	switch s {
	case retry.Deferred:
	case retry.Released:
		_, err = h.l.Release(h.ctx, id)
	case retry.Held:
		_, err = h.l.Hold(h.ctx, id)
	case retry.Passed:
		_, err = h.l.Pass(h.ctx, id, retry.Attempt{At: h.clock.Now()})
	case retry.Expired:
		_, err = h.l.Expire(h.ctx, id, h.clock.Now(), expiredReason)
	default:
		h.Fatalf("inState: unknown state %q", s)
	}
	if err != nil {
		h.Fatalf("bringing a record to %s: %v", s, err)
	}
	if got := h.mustGet(id).State; got != s {
		h.Fatalf("bringing a record to %s: it is %s", s, got)
	}
}

// listAll pages through List with a small page, as an admin view would.
func (h *harness) listAll(s retry.State) []retry.Record {
	h.Helper()
	var all []retry.Record
	var after stamp.Identity
	for {
		page, err := h.l.List(h.ctx, retry.Filter{State: s, Limit: 3, After: after})
		if err != nil {
			h.Fatalf("List(%q): %v", s, err)
		}
		if len(page) > 3 {
			h.Fatalf("List(%q, Limit 3) returned %d records", s, len(page))
		}
		all = append(all, page...)
		if len(page) < 3 {
			return all
		}
		after = page[len(page)-1].ID
	}
}

// checkIndex verifies that listing by state finds every record exactly in
// the state Get reports: the secondary index agrees with the records.
func (h *harness) checkIndex() {
	h.Helper()
	all := h.listAll("")
	byState := map[stamp.Identity]retry.State{}
	for _, s := range retry.States {
		for _, rec := range h.listAll(s) {
			if rec.State != s {
				h.Errorf("List(%s) returned %s in state %s", s, rec.ID, rec.State)
			}
			if prev, dup := byState[rec.ID]; dup {
				h.Errorf("%s listed under %s and %s", rec.ID, prev, s)
			}
			byState[rec.ID] = s
		}
	}
	if len(byState) != len(all) {
		h.Errorf("lists by state hold %d records, the full list %d", len(byState), len(all))
	}
	for _, rec := range all {
		if byState[rec.ID] != rec.State {
			h.Errorf("%s is %s but listed under %q", rec.ID, rec.State, byState[rec.ID])
		}
	}
}

// normalize makes records comparable whatever representation a backend
// returns for "no elements" and for time zones.
func normalize(r retry.Record) retry.Record {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return time.Time{}
		}
		return t.UTC()
	}
	r.FirstSeen, r.LastSeen, r.UpdatedAt, r.ExpiredAt = utc(r.FirstSeen), utc(r.LastSeen), utc(r.UpdatedAt), utc(r.ExpiredAt)
	r.History = slices.Clone(r.History)
	for i := range r.History {
		r.History[i].At = utc(r.History[i].At)
	}
	r.Notices = slices.Clone(r.Notices)
	for i := range r.Notices {
		r.Notices[i].At = utc(r.Notices[i].At)
	}
	if len(r.History) == 0 {
		r.History = nil
	}
	if len(r.Recipients) == 0 {
		r.Recipients = nil
	}
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	if len(r.Notices) == 0 {
		r.Notices = nil
	}
	r.Outbox = slices.Clone(r.Outbox)
	for i := range r.Outbox {
		r.Outbox[i].Until, r.Outbox[i].At = utc(r.Outbox[i].Until), utc(r.Outbox[i].At)
	}
	if len(r.Outbox) == 0 {
		r.Outbox = nil
	}
	return r
}

func (h *harness) sameRecord(what string, want, got retry.Record) {
	h.Helper()
	if !reflect.DeepEqual(normalize(want), normalize(got)) {
		h.Errorf("%s: records differ\nwant %+v\ngot  %+v", what, want, got)
	}
}

// µs is the precision the ledger promises for every time it keeps.
func µs(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func testDeferCreates(h *harness) {
	id := h.newID()
	if _, err := h.l.Get(h.ctx, id); !errors.Is(err, retry.ErrNotFound) {
		h.Fatalf("Get of an unknown identity: %v, want ErrNotFound", err)
	}
	at := h.clock.Advance(time.Second)
	d := h.deferral(id, at, 1)
	rec := h.mustDefer(d)
	want := retry.Record{
		ID: id, FirstSeen: µs(at), LastSeen: µs(at), State: retry.Deferred, Attempts: 1,
		History: []retry.Attempt{attemptAt(µs(at), 1)},
		Sender:  d.Sender, Recipients: d.Recipients, Headers: d.Headers,
		UpdatedAt: µs(h.clock.Now()),
	}
	h.sameRecord("Defer's answer", want, rec)
	h.sameRecord("Get after Defer", want, h.mustGet(id))
	h.checkIndex()
}

func testDeferKeepsStampTime(h *harness) {
	id := h.newID()
	stampTime := h.clock.Now().Truncate(time.Second)
	d := h.deferral(id, h.clock.Advance(1500*time.Millisecond), 1)
	d.FirstSeen = stampTime
	if rec := h.mustDefer(d); !rec.FirstSeen.Equal(stampTime) {
		h.Errorf("FirstSeen = %v, want the stamp's time %v", rec.FirstSeen, stampTime)
	}
	d.FirstSeen = stampTime.Add(time.Hour) // a later stamp time must not rewrite history
	if rec := h.mustDefer(d); !rec.FirstSeen.Equal(stampTime) {
		h.Errorf("second Defer moved FirstSeen to %v, want %v", rec.FirstSeen, stampTime)
	}
}

func testDeferAddsAttempts(h *harness) {
	id := h.newID()
	first := h.clock.Now()
	h.mustDefer(h.deferral(id, first, 1))
	second := h.clock.Advance(10 * time.Minute)
	d := h.deferral(id, second, 2)
	d.Sender, d.Headers = "changed@example.org", []retry.Header{{Name: "Subject", Value: "changed"}}
	rec := h.mustDefer(d)
	if rec.Attempts != 2 || len(rec.History) != 2 {
		h.Fatalf("after two deferrals: Attempts %d, History %d; want 2, 2", rec.Attempts, len(rec.History))
	}
	if !rec.FirstSeen.Equal(µs(first)) || !rec.LastSeen.Equal(µs(second)) {
		h.Errorf("FirstSeen %v LastSeen %v, want %v and %v", rec.FirstSeen, rec.LastSeen, first, second)
	}
	if rec.History[0].QueueID != "Q0001" || rec.History[1].QueueID != "Q0002" {
		h.Errorf("history out of order: %+v", rec.History)
	}
	if rec.Sender != "alice@example.org" || rec.Headers[0].Value != "hello" {
		h.Errorf("a retry replaced the original envelope or header: %q %+v", rec.Sender, rec.Headers)
	}
	if !rec.UpdatedAt.Equal(µs(second)) {
		h.Errorf("UpdatedAt %v, want the clock's %v", rec.UpdatedAt, second)
	}
	h.sameRecord("Get", rec, h.mustGet(id))
}

func testHistoryBound(h *harness) {
	id := h.newID()
	const n = retry.MaxHistory + 10
	var rec retry.Record
	for i := 1; i <= n; i++ {
		rec = h.mustDefer(h.deferral(id, h.clock.Advance(time.Minute), i))
	}
	if rec.Attempts != n {
		h.Errorf("Attempts = %d, want %d", rec.Attempts, n)
	}
	if len(rec.History) != retry.MaxHistory {
		h.Fatalf("History holds %d attempts, want %d", len(rec.History), retry.MaxHistory)
	}
	want := []string{"Q0001"} // the first, then the latest MaxHistory-1, oldest first
	for i := n - retry.MaxHistory + 2; i <= n; i++ {
		want = append(want, fmt.Sprintf("Q%04d", i))
	}
	var got []string
	for _, a := range h.mustGet(id).History {
		got = append(got, a.QueueID)
	}
	if !slices.Equal(got, want) {
		h.Errorf("History queue IDs\n got %v\nwant %v", got, want)
	}
}

func testHeaderBound(h *harness) {
	field := func(i, size int) retry.Header { // size bytes as written
		name := fmt.Sprintf("X-F%03d", i)
		return retry.Header{Name: name, Value: strings.Repeat("v", size-len(name)-4)}
	}
	exact := []retry.Header{field(1, retry.MaxHeaderBytes/2), field(2, retry.MaxHeaderBytes/2)}
	over := append(slices.Clone(exact), field(3, 10))
	huge := []retry.Header{field(1, 100), field(2, retry.MaxHeaderBytes), field(3, 100)}
	for _, tc := range []struct {
		name      string
		in, want  []retry.Header
		truncated bool
	}{
		{"fits exactly", exact, exact, false},
		{"one field over", over, exact, true},
		{"a field larger than the bound", huge, huge[:1], true},
	} {
		d := h.deferral(h.newID(), h.clock.Now(), 1)
		d.Headers = tc.in
		h.mustDefer(d)
		rec := h.mustGet(d.ID)
		if rec.Truncated != tc.truncated || !slices.Equal(rec.Headers, tc.want) {
			h.Errorf("%s: stored %d fields (truncated %v), want %d (truncated %v)",
				tc.name, len(rec.Headers), rec.Truncated, len(tc.want), tc.truncated)
		}
	}
}

// machine is the state machine as the package documentation states it;
// a missing entry is ErrTransition.
var machine = map[string]map[retry.State]retry.State{
	"defer":   {retry.Deferred: retry.Deferred, retry.Passed: retry.Deferred, retry.Released: retry.Released, retry.Held: retry.Held},
	"pass":    {retry.Deferred: retry.Passed, retry.Released: retry.Passed, retry.Passed: retry.Passed},
	"release": {retry.Deferred: retry.Released, retry.Held: retry.Released, retry.Released: retry.Released},
	"hold":    {retry.Deferred: retry.Held, retry.Released: retry.Held, retry.Held: retry.Held},
	"expire":  {retry.Deferred: retry.Expired, retry.Released: retry.Expired, retry.Held: retry.Expired, retry.Expired: retry.Expired},
}

func (h *harness) apply(op string, id stamp.Identity) (retry.Record, error) {
	now := h.clock.Now()
	switch op {
	case "defer":
		return h.l.Defer(h.ctx, h.deferral(id, now, 99))
	case "pass":
		return h.l.Pass(h.ctx, id, retry.Attempt{At: now, QueueID: "Q0099"})
	case "release":
		return h.l.Release(h.ctx, id)
	case "hold":
		return h.l.Hold(h.ctx, id)
	case "expire":
		return h.l.Expire(h.ctx, id, now, expiredReason)
	}
	h.Fatalf("unknown op %q", op)
	return retry.Record{}, nil
}

func testTransitions(h *harness) {
	for _, op := range slices.Sorted(maps.Keys(machine)) {
		for _, from := range retry.States {
			id := h.inState(from)
			before := h.mustGet(id)
			h.clock.Advance(time.Minute)
			rec, err := h.apply(op, id)
			to, allowed := machine[op][from]
			switch {
			case !allowed:
				if !errors.Is(err, retry.ErrTransition) {
					h.Errorf("%s from %s: err %v, want ErrTransition", op, from, err)
				}
				h.sameRecord(op+" refused from "+string(from)+" left the record", before, h.mustGet(id))
			case err != nil:
				h.Errorf("%s from %s: %v", op, from, err)
			case rec.State != to || h.mustGet(id).State != to:
				h.Errorf("%s from %s: state %s (stored %s), want %s", op, from, rec.State, h.mustGet(id).State, to)
			default:
				h.sameRecord(op+" answer vs stored", rec, h.mustGet(id))
				if !rec.FirstSeen.Equal(before.FirstSeen) {
					h.Errorf("%s from %s changed FirstSeen", op, from)
				}
				wantAttempts := before.Attempts
				if op == "defer" || op == "pass" {
					wantAttempts++
				}
				if rec.Attempts != wantAttempts {
					h.Errorf("%s from %s: Attempts %d, want %d", op, from, rec.Attempts, wantAttempts)
				}
			}
		}
	}
	h.checkIndex()
}

func testNotFound(h *harness) {
	id := h.newID()
	for _, op := range []string{"pass", "release", "hold", "expire"} {
		if _, err := h.apply(op, id); !errors.Is(err, retry.ErrNotFound) {
			h.Errorf("%s of an unknown identity: %v, want ErrNotFound", op, err)
		}
	}
	if recs, err := h.l.List(h.ctx, retry.Filter{}); err != nil || len(recs) != 0 {
		h.Errorf("after refused operations List = %d records, %v; want none", len(recs), err)
	}
}

func testInvalidInput(h *harness) {
	known := h.inState(retry.Deferred)
	fresh := h.newID()
	now := h.clock.Now()
	good := h.deferral(fresh, now, 1)
	with := func(f func(*retry.Deferral)) retry.Deferral { d := good; f(&d); return d }
	cases := map[string]func() error{
		"defer zero identity": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.ID = stamp.Identity{} }))
			return err
		},
		"defer no time": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.Attempt.At = time.Time{} }))
			return err
		},
		"defer with a 5xx": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.Attempt.Reason.Code = 550 }))
			return err
		},
		"defer no code": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.Attempt.Reason = retry.Reason{} }))
			return err
		},
		"defer bad enhanced": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.Attempt.Reason.Enhanced = "5.7.1" }))
			return err
		},
		"defer CRLF in text": func() error {
			_, err := h.l.Defer(h.ctx, with(func(d *retry.Deferral) { d.Attempt.Reason.Text = "a\r\nb" }))
			return err
		},
		"pass no time":        func() error { _, err := h.l.Pass(h.ctx, known, retry.Attempt{}); return err },
		"pass with a 4xx":     func() error { _, err := h.l.Pass(h.ctx, known, retry.Attempt{At: now, Reason: greylisted}); return err },
		"release zero":        func() error { _, err := h.l.Release(h.ctx, stamp.Identity{}); return err },
		"hold zero":           func() error { _, err := h.l.Hold(h.ctx, stamp.Identity{}); return err },
		"expire with a 4xx":   func() error { _, err := h.l.Expire(h.ctx, known, now, greylisted); return err },
		"expire no time":      func() error { _, err := h.l.Expire(h.ctx, known, time.Time{}, expiredReason); return err },
		"list unknown state":  func() error { _, err := h.l.List(h.ctx, retry.Filter{State: "lost"}); return err },
		"list negative limit": func() error { _, err := h.l.List(h.ctx, retry.Filter{Limit: -1}); return err },
		"purge no states":     func() error { _, err := h.l.Purge(h.ctx, retry.PurgeFilter{UpdatedBefore: now}); return err },
		"purge no time": func() error {
			_, err := h.l.Purge(h.ctx, retry.PurgeFilter{States: []retry.State{retry.Passed}})
			return err
		},
		"purge unknown state": func() error {
			_, err := h.l.Purge(h.ctx, retry.PurgeFilter{States: []retry.State{"gone"}, UpdatedBefore: now})
			return err
		},
	}
	for name, call := range cases {
		if err := call(); !errors.Is(err, retry.ErrInvalid) {
			h.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := h.l.Get(h.ctx, fresh); !errors.Is(err, retry.ErrNotFound) {
		h.Errorf("an invalid deferral left a record: %v", err)
	}
	if rec := h.mustGet(known); rec.State != retry.Deferred || rec.Attempts != 1 {
		h.Errorf("invalid calls changed a record: %+v", rec)
	}
}

func testExpire(h *harness) {
	id := h.inState(retry.Deferred)
	at := h.clock.Advance(time.Hour)
	rec, err := h.l.Expire(h.ctx, id, at, expiredReason)
	if err != nil {
		h.Fatal(err)
	}
	if rec.State != retry.Expired || !rec.ExpiredAt.Equal(µs(at)) || rec.ExpiredReason != expiredReason {
		h.Fatalf("expired record: %+v", rec)
	}
	h.clock.Advance(time.Hour)
	again, err := h.l.Expire(h.ctx, id, h.clock.Now(), retry.Reason{Code: 554, Text: "other"})
	if err != nil {
		h.Fatalf("second Expire: %v", err)
	}
	h.sameRecord("second Expire keeps the first answer", rec, again)
	h.sameRecord("stored after second Expire", rec, h.mustGet(id))
	if _, err := h.l.Defer(h.ctx, h.deferral(id, h.clock.Now(), 5)); !errors.Is(err, retry.ErrTransition) {
		h.Errorf("Defer of an expired record: %v, want ErrTransition", err)
	}
}

func testIdempotentAdmin(h *harness) {
	for _, tc := range []struct {
		op    string
		state retry.State
	}{{"release", retry.Released}, {"hold", retry.Held}} {
		id := h.inState(tc.state)
		before := h.mustGet(id)
		h.clock.Advance(time.Hour)
		rec, err := h.apply(tc.op, id)
		if err != nil {
			h.Fatalf("%s twice: %v", tc.op, err)
		}
		h.sameRecord(tc.op+" twice", before, rec)
		h.sameRecord(tc.op+" twice, stored", before, h.mustGet(id))
	}
}

func testList(h *harness) {
	want := map[retry.State][]stamp.Identity{}
	var all []stamp.Identity
	for i := 0; i < 20; i++ {
		s := retry.States[i%len(retry.States)]
		id := h.inState(s)
		want[s] = append(want[s], id)
		all = append(all, id)
	}
	byBytes := func(a, b stamp.Identity) int { return bytes.Compare(a[:], b[:]) }
	ids := func(recs []retry.Record) []stamp.Identity {
		var out []stamp.Identity
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	slices.SortFunc(all, byBytes)
	if got := ids(h.listAll("")); !slices.Equal(got, all) {
		h.Errorf("paged List of everything:\n got %v\nwant %v (identity order)", got, all)
	}
	for s, w := range want {
		slices.SortFunc(w, byBytes)
		if got := ids(h.listAll(s)); !slices.Equal(got, w) {
			h.Errorf("paged List(%s):\n got %v\nwant %v", s, got, w)
		}
	}
	page, err := h.l.List(h.ctx, retry.Filter{})
	if err != nil || len(page) != len(all) {
		h.Errorf("List with no limit: %d records, %v; want %d", len(page), err, len(all))
	}
	page, err = h.l.List(h.ctx, retry.Filter{After: all[len(all)-1]})
	if err != nil || len(page) != 0 {
		h.Errorf("List after the last identity: %d records, %v; want none", len(page), err)
	}
	// A cursor need not be a stored identity (its record may have been purged).
	between := all[4]
	between[15]++
	page, err = h.l.List(h.ctx, retry.Filter{After: between, Limit: 2})
	if err != nil || !slices.Equal(ids(page), all[5:7]) {
		h.Errorf("List after a vanished cursor: %v, %v; want %v", ids(page), err, all[5:7])
	}
}

func testPurge(h *harness) {
	old := map[retry.State]stamp.Identity{}
	for _, s := range retry.States {
		old[s] = h.inState(s)
	}
	cutoff := h.clock.Advance(time.Hour)
	recent := map[retry.State]stamp.Identity{}
	for _, s := range retry.States {
		recent[s] = h.inState(s)
	}
	n, err := h.l.Purge(h.ctx, retry.PurgeFilter{States: []retry.State{retry.Passed, retry.Expired, retry.Passed}, UpdatedBefore: cutoff})
	if err != nil || n != 2 {
		h.Fatalf("Purge: %d, %v; want 2", n, err)
	}
	for _, s := range retry.States {
		_, err := h.l.Get(h.ctx, old[s])
		gone := s == retry.Passed || s == retry.Expired
		if gone != errors.Is(err, retry.ErrNotFound) {
			h.Errorf("old %s record after Purge: err %v, purged should be %v", s, err, gone)
		}
		h.mustGet(recent[s])
	}
	h.checkIndex()
	if n, err := h.l.Purge(h.ctx, retry.PurgeFilter{States: []retry.State{retry.Passed}, UpdatedBefore: cutoff}); err != nil || n != 0 {
		h.Errorf("second Purge: %d, %v; want 0", n, err)
	}
}

// run calls fn from workers goroutines at once and fails on any error.
func (h *harness) run(workers int, fn func(worker int) error) {
	h.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			if err := fn(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.Error(err)
	}
}

func testConcurrentSame(h *harness) {
	id := h.newID()
	first := h.clock.Now()
	h.mustDefer(h.deferral(id, first, 0))
	const workers, each = 16, 20
	h.run(workers, func(w int) error {
		for i := range each {
			rec, err := h.l.Defer(h.ctx, h.deferral(id, first.Add(time.Duration(w*each+i+1)*time.Second), 1))
			if err != nil {
				return err
			}
			if !rec.FirstSeen.Equal(µs(first)) {
				return fmt.Errorf("FirstSeen moved to %v", rec.FirstSeen)
			}
		}
		return nil
	})
	rec := h.mustGet(id)
	if rec.Attempts != 1+workers*each {
		h.Errorf("Attempts = %d, want %d: concurrent deferrals were lost", rec.Attempts, 1+workers*each)
	}
	if len(rec.History) != retry.MaxHistory || !rec.History[0].At.Equal(µs(first)) {
		h.Errorf("history: %d entries, first at %v", len(rec.History), rec.History[0].At)
	}
	if want := first.Add(workers * each * time.Second); !rec.LastSeen.Equal(µs(want)) {
		h.Errorf("LastSeen %v, want the latest attempt %v", rec.LastSeen, want)
	}
}

func testConcurrentCreation(h *harness) {
	const workers, ids = 8, 10
	var list []stamp.Identity
	for range ids {
		list = append(list, h.newID())
	}
	base := h.clock.Now()
	h.run(workers, func(w int) error {
		for _, id := range list {
			if _, err := h.l.Defer(h.ctx, h.deferral(id, base.Add(time.Duration(w)*time.Millisecond), w)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, id := range list {
		rec := h.mustGet(id)
		if rec.Attempts != workers {
			h.Errorf("%s: Attempts %d, want %d", id, rec.Attempts, workers)
		}
		// Whoever created the record set FirstSeen, and its attempt is the first in history.
		if !rec.FirstSeen.Equal(rec.History[0].At) || rec.FirstSeen.Before(µs(base)) ||
			rec.FirstSeen.After(base.Add(workers*time.Millisecond)) {
			h.Errorf("%s: FirstSeen %v, first attempt at %v", id, rec.FirstSeen, rec.History[0].At)
		}
	}
	h.checkIndex()
}

func testConcurrentMixed(h *harness) {
	var list []stamp.Identity
	for range 6 {
		list = append(list, h.inState(retry.Deferred))
	}
	const workers, rounds = 8, 15
	h.run(workers, func(w int) error {
		for i := range rounds {
			id := list[(w+i)%len(list)]
			var err error
			switch w % 4 {
			case 0, 1:
				_, err = h.l.Defer(h.ctx, h.deferral(id, h.clock.Now(), i))
			case 2:
				_, err = h.l.Hold(h.ctx, id)
			case 3:
				_, err = h.l.Release(h.ctx, id)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	deferrals := 0
	for _, id := range list {
		deferrals += h.mustGet(id).Attempts - 1
	}
	if want := 2 * rounds * workers / 4; deferrals != want {
		h.Errorf("%d deferrals counted, want %d", deferrals, want)
	}
	h.checkIndex()
}

func testReopen(h *harness) {
	var want []retry.Record
	for _, s := range retry.States {
		id := h.inState(s)
		h.clock.Advance(time.Minute)
		want = append(want, h.mustGet(id))
	}
	if err := h.l.Close(); err != nil {
		h.Fatalf("Close: %v", err)
	}
	h.l = h.open(h.clock)
	for _, w := range want {
		h.sameRecord("after reopen", w, h.mustGet(w.ID))
	}
	h.checkIndex()
	rec, err := h.l.Defer(h.ctx, h.deferral(want[0].ID, h.clock.Now(), 7))
	if err != nil || rec.Attempts != want[0].Attempts+1 || !rec.FirstSeen.Equal(want[0].FirstSeen) {
		h.Errorf("a retry after reopen: %+v, %v; want the same record one attempt longer", rec, err)
	}
}

func testClosed(h *harness) {
	id := h.inState(retry.Deferred)
	if err := h.l.Close(); err != nil {
		h.Fatalf("Close: %v", err)
	}
	if err := h.l.Close(); err != nil {
		h.Errorf("second Close: %v", err)
	}
	if _, err := h.l.Get(h.ctx, id); !errors.Is(err, retry.ErrClosed) {
		h.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := h.l.Defer(h.ctx, h.deferral(id, h.clock.Now(), 1)); !errors.Is(err, retry.ErrClosed) {
		h.Errorf("Defer after Close: %v, want ErrClosed", err)
	}
}

func testCanceled(h *harness) {
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	id := h.newID()
	if _, err := h.l.Defer(ctx, h.deferral(id, h.clock.Now(), 1)); !errors.Is(err, context.Canceled) {
		h.Errorf("Defer with a canceled context: %v", err)
	}
	if _, err := h.l.Get(h.ctx, id); !errors.Is(err, retry.ErrNotFound) {
		h.Errorf("a canceled Defer wrote a record: %v", err)
	}
}
