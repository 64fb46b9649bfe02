package pipeline

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/syncbuf"
	"github.com/wasmilter/wasmilter/internal/tmpfstest"
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
)

// TestStoreErrorPolicyOnAFullDisk: messages are deferred until the
// ledger's file system is full, so a deferral can no longer be recorded;
// what the MTA then hears is what on_store_error says. tempfail: the
// plugin's deferral still goes out (a 4xx, unrecorded, logged); accept:
// the message passes unrecorded. Reads still work on a full disk, so every
// message reaches its plugin. (retry.TestBoltDiskFull checks the file.)
func TestStoreErrorPolicyOnAFullDisk(t *testing.T) {
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept=%v", accept), func(t *testing.T) {
			dir := tmpfstest.Mount(t, 1<<20)
			// Something else on the same file system takes most of it.
			if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 768<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := retry.OpenBolt(filepath.Join(dir, "ledger.db"), retry.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			logs := &syncbuf.Buffer{}
			p := New(Options{Chain: sharedChain(t), Stamps: unsignedCodec, Ledger: l,
				Policy: retry.Policy{MaxAge: 24 * time.Hour}, AcceptOnStoreError: accept,
				Clock: func() time.Time { return fixedNow }, Logger: slog.New(slog.NewTextHandler(logs, nil))})

			const unrecorded = "recording a deferral failed"
			for i := 0; ; i++ {
				if i == 5000 {
					t.Fatal("5,000 deferrals and the disk is not full")
				}
				s := p.NewOfflineSession(macros{"i": fmt.Sprintf("Q%d", i)})
				before := strings.Count(logs.String(), unrecorded)
				reply, mods := msg{from: "alice@example.org", rcpts: []string{"bob@example.net"},
					headers: plainHeaders(fmt.Sprintf("full-%d", i), deferMe)}.send(t, s)
				s.Close()
				if strings.Count(logs.String(), unrecorded) == before {
					if reply.Action != milter.TempFail || reply.Code != 451 {
						t.Fatalf("message %d, recorded: %+v, want the plugin's 451", i, reply)
					}
					continue
				}
				// The disk is full: this one was not recorded.
				t.Logf("the disk filled at message %d", i)
				if accept {
					if reply.Action != milter.Continue {
						t.Fatalf("on_store_error accept: %+v, want the message through", reply)
					}
					if _, n := header(mods, "X-Wasmilter-Stamp"); n != 1 {
						t.Errorf("the passed message was not stamped: %+v", mods)
					}
				} else if reply.Action != milter.TempFail || reply.Code != 451 {
					t.Fatalf("on_store_error tempfail: %+v, want the deferral (451) unrecorded", reply)
				}
				break
			}
			want := "on_store_error=tempfail"
			if accept {
				want = "on_store_error=accept"
			}
			if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "no space left on device") {
				t.Errorf("the log line does not say why and which policy applied:\n%s", lastLines(logs.String(), 5))
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
