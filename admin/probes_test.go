package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get fetches path without a token and returns the status and body.
func get(t *testing.T, srv *httptest.Server, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestProbesNeedNoToken: with a token configured, the probes still answer
// without it; /metrics and the API do not.
func TestProbesNeedNoToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "m 1\n") })
	srv := httptest.NewServer(NewHandler(Options{Token: "s3cret", Metrics: metrics,
		Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, srv, path, ""); code != http.StatusOK {
			t.Errorf("%s without a token: %d %q, want 200", path, code, body)
		}
	}
	if code, _ := get(t, srv, "/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", code)
	}
	if code, body := get(t, srv, "/metrics", "s3cret"); code != http.StatusOK || body != "m 1\n" {
		t.Errorf("/metrics with the token: %d %q", code, body)
	}
	if code, _ := get(t, srv, "/v1/cache/stats", ""); code != http.StatusUnauthorized {
		t.Errorf("the API without the token: %d, want 401", code)
	}
}

// TestReadyzSaysWhy: a failing readiness check is a 503 with its reason on
// one line; the liveness probe stays 200.
func TestReadyzSaysWhy(t *testing.T) {
	var notReady error
	srv := httptest.NewServer(NewHandler(Options{Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) error { return notReady }}))
	defer srv.Close()
	if code, body := get(t, srv, "/readyz", ""); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("ready server: %d %q", code, body)
	}
	notReady = errors.New("retry ledger unreachable:\n  dial tcp: connection refused")
	code, body := get(t, srv, "/readyz", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz of a server not ready: %d %q, want 503", code, body)
	}
	if want := "not ready: retry ledger unreachable: dial tcp: connection refused\n"; body != want {
		t.Errorf("readyz body %q, want %q (one line)", body, want)
	}
	if code, _ := get(t, srv, "/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz of a live server that is not ready: %d, want 200", code)
	}
}

// TestReadyzIsBounded: a check that hangs (an unreachable Redis) is cut off
// by the probe's own deadline and reads as not ready.
func TestReadyzIsBounded(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Options{Logger: slog.New(slog.DiscardHandler),
		Ready: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}))
	defer srv.Close()
	code, body := get(t, srv, "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "deadline exceeded") {
		t.Errorf("hanging check: %d %q, want 503 naming the deadline", code, body)
	}
}

// TestNoMetricsHandler: without metrics, /metrics is a plain 404.
func TestNoMetricsHandler(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Options{Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	if code, _ := get(t, srv, "/metrics", ""); code != http.StatusNotFound {
		t.Errorf("/metrics without a handler: %d, want 404", code)
	}
}
