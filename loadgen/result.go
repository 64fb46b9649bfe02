package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Its JSON form is the command's -json
// output; field names are stable.
type Result struct {
	Milter          string       `json:"milter"`
	Concurrency     int          `json:"concurrency"`
	MessagesPerConn int          `json:"messages_per_conn"`
	Rcpts           int          `json:"rcpts"`
	MessageBytes    int          `json:"message_bytes"`
	HeaderFields    int          `json:"header_fields"`
	Body            bool         `json:"body"` // the body was offered (sent if the milter negotiated it)
	Offered         Negotiation  `json:"offered"`
	Negotiated      *Negotiation `json:"negotiated,omitempty"` // nil if no session got that far
	// StoppedBy is "count", "duration", "errors" or "interrupted".
	StoppedBy      string  `json:"stopped_by"`
	ElapsedSeconds float64 `json:"elapsed_s"`
	// Messages that got a final action; Errors, messages that failed
	// (including the first message of a session that could not start).
	Messages   int64   `json:"messages"`
	Errors     int64   `json:"errors"`
	Sessions   uint64  `json:"sessions"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	// Latency of a message from MAIL to its final reply, in microseconds.
	Latency       Latency          `json:"latency_us"`
	Actions       map[string]int64 `json:"actions"`
	Modifications map[string]int64 `json:"modifications"`
	ServerCPU     *CPU             `json:"server_cpu,omitempty"`
	// ClientCPU is the load generator's own CPU time: on a small machine
	// it competes with the milter for the same cores.
	ClientCPU    *CPU     `json:"client_cpu,omitempty"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// Negotiation is one side's option negotiation packet.
type Negotiation struct {
	Version  uint32 `json:"version"`
	Actions  string `json:"actions"`  // hex
	Protocol string `json:"protocol"` // hex
}

func (n Negotiation) String() string {
	return fmt.Sprintf("version %d, actions %s, protocol %s", n.Version, n.Actions, n.Protocol)
}

// Latency percentiles in microseconds (HdrHistogram, three significant
// digits; Max is exact).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// CPU is a process's CPU time over the run.
type CPU struct {
	PID          int     `json:"pid,omitempty"`
	TotalMs      float64 `json:"total_ms"`
	PerMessageUs float64 `json:"per_message_us"`
}

func cpuReport(pid int, used time.Duration, messages int64) *CPU {
	c := &CPU{PID: pid, TotalMs: float64(used) / float64(time.Millisecond)}
	if messages > 0 {
		c.PerMessageUs = float64(used) / float64(time.Microsecond) / float64(messages)
	}
	return c
}

func (r *runner) result(st *workerStats, elapsed time.Duration, parent, run context.Context) *Result {
	msg := r.cfg.Message
	res := &Result{
		Milter: r.cfg.Milter, Concurrency: r.cfg.Concurrency, MessagesPerConn: r.cfg.MessagesPerConn,
		Rcpts: r.cfg.Rcpts, MessageBytes: msg.Size, HeaderFields: len(msg.Headers),
		Body:           !r.cfg.NoBody && len(msg.Body) > 0,
		Offered:        Negotiation{Version: r.cfg.Offer.Version, Actions: fmt.Sprintf("0x%x", uint32(r.cfg.Offer.Actions)), Protocol: fmt.Sprintf("0x%x", uint32(r.cfg.Offer.Protocol))},
		ElapsedSeconds: elapsed.Seconds(),
		Messages:       st.messages,
		Errors:         r.failed.Load(),
		Sessions:       r.sessions.Load(),
		Actions:        st.actions,
		Modifications:  st.mods,
		ErrorSamples:   r.samples,
		Negotiated:     r.negotiated,
	}
	if elapsed > 0 {
		res.MsgsPerSec = float64(st.messages) / elapsed.Seconds()
	}
	if st.messages > 0 {
		maxUs := st.max.Microseconds()
		// A percentile is its bucket's upper bound, which may exceed the
		// exact maximum by the histogram's 0.1% precision.
		q := func(p float64) float64 { return float64(min(st.hist.ValueAtQuantile(p), max(maxUs, 1))) }
		res.Latency = Latency{P50: q(50), P90: q(90), P99: q(99), Max: float64(maxUs), Mean: st.hist.Mean()}
	}
	res.StoppedBy = r.stoppedBy(parent, run)
	return res
}

func (r *runner) stoppedBy(parent, run context.Context) string {
	switch {
	case r.failed.Load() > int64(r.cfg.MaxErrors):
		return "errors"
	case parent.Err() != nil:
		return "interrupted"
	case errors.Is(run.Err(), context.DeadlineExceeded):
		return "duration"
	}
	return "count"
}

// WriteText prints the result for a person.
func (res *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s%s\n", label, fmt.Sprintf(format, args...))
	}
	line("milter", "%s", res.Milter)
	line("offered", "%s", res.Offered)
	if res.Negotiated != nil {
		line("negotiated", "%s", res.Negotiated)
	}
	body := "with body"
	if !res.Body {
		body = "without body"
	}
	line("load", "%d connections, %d messages per connection, %d recipient(s), %d-byte message, %d header fields, %s",
		res.Concurrency, res.MessagesPerConn, res.Rcpts, res.MessageBytes, res.HeaderFields, body)
	line("stopped by", "%s after %.2fs: %d messages in %d sessions, %d errors",
		res.StoppedBy, res.ElapsedSeconds, res.Messages, res.Sessions, res.Errors)
	line("throughput", "%.0f msgs/s", res.MsgsPerSec)
	l := res.Latency
	line("latency", "p50 %s  p90 %s  p99 %s  max %s  mean %s (MAIL to final reply)",
		micros(l.P50), micros(l.P90), micros(l.P99), micros(l.Max), micros(l.Mean))
	line("actions", "%s", counts(res.Actions))
	line("changes", "%s", counts(res.Modifications))
	if c := res.ServerCPU; c != nil {
		line("server CPU", "pid %d: %.0f ms, %.1f µs/message", c.PID, c.TotalMs, c.PerMessageUs)
	}
	if c := res.ClientCPU; c != nil {
		line("bench CPU", "%.0f ms, %.1f µs/message (this load generator)", c.TotalMs, c.PerMessageUs)
	}
	for _, e := range res.ErrorSamples {
		line("error", "%s", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func micros(us float64) string {
	return time.Duration(us * float64(time.Microsecond)).Round(time.Microsecond).String()
}

// counts renders a tally sorted by name; "none" when empty.
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
