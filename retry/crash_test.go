package retry_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/stamp"
)

// Environment of the child process in TestDeferSurvivesSIGKILL.
const (
	envCrashLedger = "WASMILTER_RETRY_CRASH_LEDGER" // the ledger file; set only in the child
	envCrashRound  = "WASMILTER_RETRY_CRASH_ROUND"
)

// TestMain turns the test binary into the crash test's child when asked to.
func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashLedger); path != "" {
		os.Exit(crashChild(path, os.Getenv(envCrashRound)))
	}
	os.Exit(m.Run())
}

// crashChild defers new messages from several sessions until it is killed,
// writing each identity to stdout only after Defer returned: a printed
// identity is one the ledger acknowledged, as a 4xx to the MTA would be.
// It stops by itself after a while so that no child outlives a broken
// parent.
func crashChild(path, round string) int {
	l, err := retry.OpenBolt(path, retry.BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	deadline := time.Now().Add(30 * time.Second)
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := stamp.Derive(stamp.Facts{Sender: fmt.Sprintf("r%s-w%d-%d@crash.test", round, w, i)})
				if _, err := l.Defer(context.Background(), benchDeferral(id)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out.Lock()
				os.Stdout.WriteString(id.String() + "\n") // one write: a line is whole or absent
				out.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// TestDeferSurvivesSIGKILL kills a process deferring messages at full speed,
// several times, and checks that every deferral it acknowledged is in the
// ledger afterwards.
func TestDeferSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	var acked []stamp.Identity
	const rounds = 5
	for round := 1; round <= rounds; round++ {
		// Kill at a different point in each round.
		ids, err := runAndKill(t, path, round, 40*round+round*round*7)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		acked = append(acked, ids...)
	}
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatalf("reopen after the last kill: %v", err)
	}
	defer l.Close()
	lost := 0
	for _, id := range acked {
		if _, err := l.Get(context.Background(), id); err != nil {
			lost++
			t.Errorf("acknowledged deferral %s: %v", id, err)
		}
	}
	all, err := l.List(context.Background(), retry.Filter{State: retry.Deferred, Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deferrals acknowledged %d, kills %d, lost %d (records in the ledger %d: the difference was written but killed before it was printed)",
		len(acked), rounds, lost, len(all))
}

// runAndKill starts the child, reads the identities it acknowledges until
// it has killAfter of them (or 20 s pass), kills it with SIGKILL, and
// returns every identity it printed whole, including those read after the
// kill signal.
func runAndKill(t *testing.T, path string, round, killAfter int) ([]stamp.Identity, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashLedger+"="+path, envCrashRound+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	kill := sync.OnceFunc(func() { cmd.Process.Signal(syscall.SIGKILL) })
	timer := time.AfterFunc(20*time.Second, kill) // bounds the round if the child stalls
	defer timer.Stop()

	var ids []stamp.Identity
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a fragment without its newline was cut by the kill: not acknowledged
		}
		if err != nil {
			kill()
			return nil, err
		}
		id, err := stamp.ParseIdentity(strings.TrimSuffix(line, "\n"))
		if err != nil {
			kill()
			return nil, fmt.Errorf("child printed %q: %w", line, err)
		}
		ids = append(ids, id)
		if len(ids) == killAfter {
			kill()
		}
	}
	err = cmd.Wait()
	if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !status.Signaled() || status.Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("child did not die of SIGKILL: %v", err)
	}
	if len(ids) < killAfter {
		return nil, fmt.Errorf("child acknowledged only %d deferrals before the time limit", len(ids))
	}
	return ids, nil
}
