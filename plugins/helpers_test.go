package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// requireWat2Wasm skips the test when wabt's wat2wasm is missing, unless
// WASMILTER_REQUIRE_TOOLS=1 (set in CI), where a missing tool is a failure.
func requireWat2Wasm(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("wat2wasm")
	if err == nil {
		return path
	}
	const msg = "wat2wasm not found (install Debian package wabt); the plugin host tests compile their guests from plugins/testdata/*.wat"
	if os.Getenv("WASMILTER_REQUIRE_TOOLS") == "1" {
		tb.Fatal(msg + " and WASMILTER_REQUIRE_TOOLS=1 makes that a failure")
	}
	tb.Skip(msg)
	return ""
}

// compiled caches wat2wasm output by source text for the test binary's life.
var compiled sync.Map // string -> []byte

// watSource compiles WebAssembly text to a module.
func watSource(tb testing.TB, name, src string) []byte {
	tb.Helper()
	if wasm, ok := compiled.Load(src); ok {
		return wasm.([]byte)
	}
	tool := requireWat2Wasm(tb)
	dir := tb.TempDir()
	in, out := filepath.Join(dir, name+".wat"), filepath.Join(dir, name+".wasm")
	if err := os.WriteFile(in, []byte(src), 0o600); err != nil {
		tb.Fatal(err)
	}
	if msg, err := exec.Command(tool, in, "-o", out).CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm %s: %v\n%s", name, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	compiled.Store(src, wasm)
	return wasm
}

// watFile compiles plugins/testdata/<name>.wat.
func watFile(tb testing.TB, name string) []byte {
	tb.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name+".wat"))
	if err != nil {
		tb.Fatal(err)
	}
	return watSource(tb, name, string(src))
}

// fixedWasm builds testdata/fixed.wat answering a at every hook.
func fixedWasm(tb testing.TB, a abi.Answer) []byte {
	tb.Helper()
	tmpl, err := os.ReadFile(filepath.Join("testdata", "fixed.wat"))
	if err != nil {
		tb.Fatal(err)
	}
	enc := abi.AppendAnswer(nil, &a)
	var esc strings.Builder
	for _, c := range enc {
		fmt.Fprintf(&esc, "\\%02x", c)
	}
	src := strings.NewReplacer("__ANSWER__", esc.String(), "__ANSWER_LEN__", fmt.Sprint(len(enc))).Replace(string(tmpl))
	return watSource(tb, "fixed", src)
}

// logRecorder is a slog.Handler that keeps every record for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []recordedLog
}

type recordedLog struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	l := recordedLog{Level: rec.Level, Message: rec.Message, Attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, l)
	r.mu.Unlock()
	return nil
}

// find returns the records that satisfy match.
func (r *logRecorder) find(match func(recordedLog) bool) []recordedLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedLog
	for _, l := range r.records {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// newTestHost makes a host logging into a recorder, closed with the test.
func newTestHost(tb testing.TB, opts ...func(*HostConfig)) (*Host, *logRecorder) {
	tb.Helper()
	rec := &logRecorder{}
	cfg := HostConfig{Logger: slog.New(rec)}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			tb.Errorf("host close: %v", err)
		}
	})
	return h, rec
}

// load loads a plugin or fails the test.
func load(tb testing.TB, h *Host, spec Spec) *Plugin {
	tb.Helper()
	if spec.Source == "" {
		spec.Source = "testdata/" + spec.Name + ".wat"
	}
	if spec.Timeout == 0 {
		// Generous: the machine running tests may be loaded, and -race is
		// slow. Tests about deadlines set their own.
		spec.Timeout = 5 * time.Second
	}
	p, err := h.Load(context.Background(), spec)
	if err != nil {
		tb.Fatalf("load %s: %v", spec.Name, err)
	}
	return p
}

// testEnv is an Env with fixed macros and an optional stamp, record and
// properties.
type testEnv struct {
	macros map[string]string
	stamp  *abi.Stamp
	record *abi.Record
	props  *abi.Properties
}

func (e testEnv) Record() (abi.Record, bool) {
	if e.record == nil {
		return abi.Record{}, false
	}
	return *e.record, true
}

func (e testEnv) Properties() (abi.Properties, bool) {
	if e.props == nil {
		return abi.Properties{}, false
	}
	return *e.props, true
}

func (e testEnv) Macro(name string) (string, bool) {
	v, ok := e.macros[name]
	return v, ok
}

func (e testEnv) Stamp() (abi.Stamp, bool) {
	if e.stamp == nil {
		return abi.Stamp{}, false
	}
	return *e.stamp, true
}

// headerEvent is an event with n headers, like a typical message's.
func headerEvent(n int, extra ...abi.Header) *abi.Event {
	ev := &abi.Event{
		ClientHost: "mail.example.org", ClientAddr: "192.0.2.10", ClientPort: 40123, Family: "inet",
		Helo: "mail.example.org", QueueID: "4ABC123DEF", From: "alice@example.org",
		Rcpts: []abi.Recipient{{Addr: "bob@example.net"}},
	}
	for i := 0; i < n; i++ {
		ev.Headers = append(ev.Headers, abi.Header{
			Name:  fmt.Sprintf("X-Header-%02d", i),
			Value: "a typical header value of some forty bytes or so",
		})
	}
	ev.Headers = append(ev.Headers, extra...)
	return ev
}

const levelError = slog.LevelError
