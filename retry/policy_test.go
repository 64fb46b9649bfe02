package retry_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/retry"
)

func TestOnArrival(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := retry.Policy{MaxAge: 48 * time.Hour}
	stored := retry.Reason{Code: 554, Enhanced: "5.4.7", Text: "told before"}
	cases := []struct {
		name  string
		state retry.State
		age   time.Duration
		saved retry.Reason
		want  retry.Action
		reply string
	}{
		{"deferred, young", retry.Deferred, time.Hour, retry.Reason{}, retry.Continue, ""},
		{"deferred, exactly MaxAge", retry.Deferred, 48 * time.Hour, retry.Reason{}, retry.Continue, ""},
		{"deferred, too old", retry.Deferred, 48*time.Hour + time.Second, retry.Reason{}, retry.Expire, "550 5.4.7 Message expired: it was deferred for more than 2 days"},
		{"released, even when old", retry.Released, 100 * time.Hour, retry.Reason{}, retry.Pass, ""},
		{"held, even when old", retry.Held, 100 * time.Hour, retry.Reason{}, retry.Hold, ""},
		{"passed", retry.Passed, 100 * time.Hour, retry.Reason{}, retry.Continue, ""},
		{"expired: the stored answer again", retry.Expired, time.Hour, stored, retry.Expire, "554 5.4.7 told before"},
		{"expired without a stored answer", retry.Expired, time.Hour, retry.Reason{}, retry.Expire, "550 5.4.7 Message expired: it was deferred for more than 2 days"},
	}
	for _, tc := range cases {
		rec := retry.Record{State: tc.state, FirstSeen: first, ExpiredReason: tc.saved}
		d := p.OnArrival(rec, first.Add(tc.age))
		if d.Action != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, d.Action, tc.want)
		}
		if got := replyText(d.Reply); got != tc.reply {
			t.Errorf("%s: reply %q, want %q", tc.name, got, tc.reply)
		}
	}
}

func replyText(r retry.Reason) string {
	if r.Code == 0 {
		return ""
	}
	return strings.Join([]string{strconv.Itoa(r.Code), r.Enhanced, r.Text}, " ")
}

func TestExpiredReasonText(t *testing.T) {
	cases := []struct {
		p    retry.Policy
		want string
	}{
		{retry.Policy{}, "Message expired: it was deferred for more than 5 days"},
		{retry.Policy{MaxAge: 24 * time.Hour}, "Message expired: it was deferred for more than 1 day"},
		{retry.Policy{MaxAge: 36 * time.Hour}, "Message expired: it was deferred for more than 36 hours"},
		{retry.Policy{MaxAge: 90 * time.Minute}, "Message expired: it was deferred for more than 90 minutes"},
		{retry.Policy{MaxAge: 90 * time.Second}, "Message expired: it was deferred for more than 1m30s"},
		{retry.Policy{ExpiredText: "Gave up after %s (100% sure, %d)"}, "Gave up after 5 days (100% sure, %d)"},
		{retry.Policy{ExpiredText: "No age here"}, "No age here"},
	}
	for _, tc := range cases {
		r := tc.p.ExpiredReason()
		if r.Code != 550 || r.Enhanced != "5.4.7" || r.Text != tc.want {
			t.Errorf("%+v: %+v, want 550 5.4.7 %q", tc.p, r, tc.want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (retry.Policy{}).Validate(); err != nil {
		t.Errorf("zero policy: %v", err)
	}
	for _, p := range []retry.Policy{{MaxAge: -time.Second}, {KeepPassed: -1}, {ExpiredText: "a\r\nb"}} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestPurgesFollowKeepTimes(t *testing.T) {
	now := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	got := retry.Policy{KeepPassed: time.Hour}.Purges(now)
	if len(got) != 2 ||
		got[0].States[0] != retry.Passed || !got[0].UpdatedBefore.Equal(now.Add(-time.Hour)) ||
		got[1].States[0] != retry.Expired || !got[1].UpdatedBefore.Equal(now.Add(-retry.DefaultKeepExpired)) {
		t.Errorf("Purges = %+v", got)
	}
}
