package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newAPI(t *testing.T, token string) (*httptest.Server, retry.Ledger) {
	t.Helper()
	clock := func() time.Time { return now }
	l, err := retry.OpenBolt(filepath.Join(t.TempDir(), "ledger.db"), retry.BoltOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(NewHandler(Options{Ledger: l, Token: token, Clock: clock, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	return srv, l
}

func deferOne(t *testing.T, l retry.Ledger, n int) stamp.Identity {
	t.Helper()
	id := stamp.Derive(stamp.Facts{Sender: fmt.Sprintf("s%d@example.org", n)})
	_, err := l.Defer(context.Background(), retry.Deferral{ID: id, Sender: fmt.Sprintf("s%d@example.org", n),
		Recipients: []string{"r@example.net"}, Headers: []retry.Header{{Name: "Subject", Value: "hello"}},
		Attempt: retry.Attempt{At: now, ClientIP: "192.0.2.1", Reason: retry.Reason{Code: 451, Enhanced: "4.7.1", Text: "greylisted"}}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func call(t *testing.T, srv *httptest.Server, method, path, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

func TestQueueListShowAndTransitions(t *testing.T) {
	srv, l := newAPI(t, "")
	a, b := deferOne(t, l, 1), deferOne(t, l, 2)

	var list []Record
	if code := call(t, srv, "GET", "/v1/queue?state=deferred", "", &list); code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %+v", code, list)
	}
	if list[0].Subject != "hello" || list[0].LastReason == nil || list[0].LastReason.Code != 451 {
		t.Errorf("list entry %+v lacks subject or last reason", list[0])
	}
	var rec Record
	if code := call(t, srv, "GET", "/v1/queue/"+a.String(), "", &rec); code != 200 || rec.ID != a.String() || len(rec.History) != 1 {
		t.Fatalf("show: %d %+v", code, rec)
	}
	if code := call(t, srv, "POST", "/v1/queue/"+a.String()+"/release", "", &rec); code != 200 || rec.State != retry.Released {
		t.Fatalf("release: %d %+v", code, rec)
	}
	if code := call(t, srv, "POST", "/v1/queue/"+b.String()+"/expire", "", &rec); code != 200 || rec.State != retry.Expired ||
		rec.ExpiredReason == nil || rec.ExpiredReason.Enhanced != "5.4.7" {
		t.Fatalf("expire: %d %+v", code, rec)
	}
	var e Error
	if code := call(t, srv, "POST", "/v1/queue/"+b.String()+"/release", "", &e); code != http.StatusConflict || e.Error == "" {
		t.Fatalf("releasing an expired record: %d %+v, want 409 with a reason", code, e)
	}
	if code := call(t, srv, "GET", "/v1/queue/"+stamp.Derive(stamp.Facts{Sender: "nobody"}).String(), "", &e); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	if code := call(t, srv, "GET", "/v1/queue/not-an-id", "", &e); code != 400 || !strings.Contains(e.Error, "identity") {
		t.Fatalf("malformed id: %d %+v", code, e)
	}
	if code := call(t, srv, "GET", "/v1/queue?state=lost", "", &e); code != 400 {
		t.Fatalf("bad state: %d", code)
	}
}

func TestQueuePurge(t *testing.T) {
	srv, l := newAPI(t, "")
	id := deferOne(t, l, 1)
	deferOne(t, l, 2)
	if _, err := l.Pass(context.Background(), id, retry.Attempt{At: now}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(4 * 24 * time.Hour)
	defer func() { now = now.Add(-4 * 24 * time.Hour) }()
	var got map[string]int
	if code := call(t, srv, "POST", "/v1/queue/purge?older_than=72h", "", &got); code != 200 || got["purged"] != 1 {
		t.Fatalf("purge of passed records: %d %v, want 1 (the deferred one stays)", code, got)
	}
	var e Error
	if code := call(t, srv, "POST", "/v1/queue/purge?older_than=soon", "", &e); code != 400 {
		t.Fatalf("bad duration: %d", code)
	}
}

func TestToken(t *testing.T) {
	srv, _ := newAPI(t, "s3cret")
	if code := call(t, srv, "GET", "/v1/queue", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code := call(t, srv, "GET", "/v1/queue", "wrong", nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code := call(t, srv, "GET", "/v1/queue", "s3cret", nil); code != 200 {
		t.Fatalf("right token: %d", code)
	}
}

func TestNoLedgerNoCache(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Options{}))
	defer srv.Close()
	var e Error
	if code := call(t, srv, "GET", "/v1/queue", "", &e); code != 404 || !strings.Contains(e.Error, "[retry] store") {
		t.Fatalf("no ledger: %d %+v", code, e)
	}
	if code := call(t, srv, "GET", "/v1/cache/stats", "", &e); code != 404 {
		t.Fatalf("no cache: %d", code)
	}
}
