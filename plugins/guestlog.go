package plugins

import (
	"context"
	"log/slog"
	"strings"
	"unicode/utf8"
)

const (
	// maxGuestLine bounds one log line from a guest: a plugin cannot fill
	// the server log with one endless line.
	maxGuestLine = 1024
	// maxGuestLinesPerCall bounds the lines one call (or one instance
	// initialization) may log, through stdout, stderr and the log host
	// function together. Lines past it are counted and reported once.
	maxGuestLinesPerCall = 64
)

// guestLog turns what one instance writes into bounded log lines tagged with
// the plugin's name. It belongs to one instance and is used by one call at a
// time, so it needs no locking.
type guestLog struct {
	logger     *slog.Logger
	plugin     string
	env        Env // the call's, for the message's log attributes; nil outside a call
	linesLeft  int
	suppressed int
}

func newGuestLog(logger *slog.Logger, plugin string) *guestLog {
	return &guestLog{logger: logger, plugin: plugin, linesLeft: maxGuestLinesPerCall}
}

// beginCall resets the per-call line budget and remembers the call's Env.
func (g *guestLog) beginCall(env Env) {
	g.env = env
	g.linesLeft = maxGuestLinesPerCall
	g.suppressed = 0
}

// endCall reports lines dropped by the budget, once per call.
func (g *guestLog) endCall() {
	if g.suppressed > 0 {
		attrs := append([]slog.Attr{slog.String("plugin", g.plugin), slog.Int("lines", g.suppressed),
			slog.Int("limit_per_call", maxGuestLinesPerCall)}, envAttrs(g.env)...)
		g.logger.LogAttrs(context.Background(), slog.LevelWarn, "plugin log lines suppressed", attrs...)
		g.suppressed = 0
	}
	g.env = nil
}

// line logs one line at level unless the call's budget is spent.
func (g *guestLog) line(level slog.Level, source string, text []byte) {
	if g.linesLeft <= 0 {
		g.suppressed++
		return
	}
	g.linesLeft--
	ctx := context.Background()
	if !g.logger.Enabled(ctx, level) {
		return
	}
	attrs := append([]slog.Attr{slog.String("plugin", g.plugin), slog.String("source", source)}, envAttrs(g.env)...)
	g.logger.LogAttrs(ctx, level, sanitizeLine(text), attrs...)
}

// sanitizeLine cuts a line to maxGuestLine bytes (on a rune boundary) and
// makes it valid UTF-8 so log processors are not confused by guest bytes.
func sanitizeLine(b []byte) string {
	truncated := false
	if len(b) > maxGuestLine {
		b = b[:maxGuestLine]
		// Drop the bytes of a rune the cut split (at most UTFMax-1).
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
			if r, _ := utf8.DecodeLastRune(b); r != utf8.RuneError {
				break
			}
			b = b[:len(b)-1]
		}
		truncated = true
	}
	s := strings.ToValidUTF8(strings.TrimRight(string(b), "\r"), "\uFFFD")
	if truncated {
		s += " …[truncated]"
	}
	return s
}

// streamWriter is a guest's stdout or stderr: an io.Writer that cuts the
// stream into lines. A partial line waits for its newline (or the end of the
// call); bytes past maxGuestLine in one line are dropped.
type streamWriter struct {
	log     *guestLog
	level   slog.Level
	source  string
	partial []byte
}

func newStreamWriter(log *guestLog, level slog.Level, source string) *streamWriter {
	return &streamWriter{log: log, level: level, source: source, partial: make([]byte, 0, 128)}
}

// Write never fails: a guest's output must not make its call fail.
func (w *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := indexNewline(p)
		if i < 0 {
			w.keep(p)
			break
		}
		w.keep(p[:i])
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func indexNewline(p []byte) int {
	for i, c := range p {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// keep buffers up to one byte more than a line may hold, so the log line
// can say it was truncated.
func (w *streamWriter) keep(p []byte) {
	room := maxGuestLine + 1 - len(w.partial)
	if len(p) > room {
		p = p[:room]
	}
	w.partial = append(w.partial, p...)
}

// flush logs the buffered line, if any.
func (w *streamWriter) flush() {
	if len(w.partial) > 0 {
		w.log.line(w.level, w.source, w.partial)
	}
	w.partial = w.partial[:0]
}
