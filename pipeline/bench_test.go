package pipeline

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/metrics"
)

// metricsObserver adapts metrics.Metrics to Observer, as the server does.
type metricsObserver struct{ *metrics.Metrics }

func (o metricsObserver) MessageCounter(stage, verdict string) Counter {
	return o.Metrics.MessageCounter(stage, verdict)
}

// BenchmarkMessage runs one passing message per iteration through a
// session (the scripted plugin and the builtin stamp, no ledger): without
// metrics, with them, and with the per-message line written (the log
// level at debug, as every message was logged at INFO before).
func BenchmarkMessage(b *testing.B) {
	for _, bc := range []struct {
		name  string
		obs   Observer
		level slog.Level
	}{
		{"nop", nil, slog.LevelInfo},
		{"metrics", metricsObserver{metrics.New(metrics.BuildInfo{})}, slog.LevelInfo},
		{"metrics+line", metricsObserver{metrics.New(metrics.BuildInfo{})}, slog.LevelDebug},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := New(Options{Chain: sharedChain(b), Stamps: unsignedCodec, Clock: func() time.Time { return fixedNow },
				Observer: bc.obs, Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: bc.level}))})
			s := p.NewOfflineSession(macros{"i": "4ABC123DEF"})
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				m := msg{from: "alice@example.org", rcpts: []string{"bob@example.net"},
					headers: plainHeaders("bench" + strconv.Itoa(i))}
				if r, _ := m.send(b, s); r.Action != 0 {
					b.Fatalf("reply %+v", r)
				}
			}
		})
	}
}
