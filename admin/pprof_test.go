package admin

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofOnlyWhenAskedAndBehindTheToken: /debug/pprof/ is 404 unless
// Pprof is set, and then needs the token like the rest of the API.
func TestPprofOnlyWhenAskedAndBehindTheToken(t *testing.T) {
	off := httptest.NewServer(NewHandler(Options{Token: "s3cret", Logger: slog.New(slog.DiscardHandler)}))
	defer off.Close()
	if code, _ := get(t, off, "/debug/pprof/heap", "s3cret"); code != http.StatusNotFound {
		t.Errorf("pprof off: /debug/pprof/heap answered %d, want 404", code)
	}

	on := httptest.NewServer(NewHandler(Options{Token: "s3cret", Pprof: true, Logger: slog.New(slog.DiscardHandler)}))
	defer on.Close()
	if code, _ := get(t, on, "/debug/pprof/heap", ""); code != http.StatusUnauthorized {
		t.Errorf("pprof on, no token: %d, want 401", code)
	}
	if code, body := get(t, on, "/debug/pprof/", "s3cret"); code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("pprof on, with the token: index %d %.80q", code, body)
	}
	if code, _ := get(t, on, "/debug/pprof/heap?debug=1", "s3cret"); code != http.StatusOK {
		t.Errorf("pprof on, with the token: heap %d, want 200", code)
	}
}
