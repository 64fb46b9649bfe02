package mtatest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// ShortTempDir returns a new directory under the system temp dir, removed in
// t.Cleanup. Unlike t.TempDir its path does not carry the test name: unix
// socket paths (Postfix's private/ and public/ sockets, a milter socket)
// must stay under the kernel's 108-byte limit however long the test name.
// It is world-searchable (0755) because MTA daemons run as their own
// unprivileged users and must reach files below it.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wasmilter-")
	if err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("mtatest: removing %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	return dir
}

// freeLoopbackPort asks the kernel for a port that is free on 127.0.0.1
// right now. An MTA is told to bind it a moment later; the window in which
// another process could take it is small and a collision fails loudly.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mtatest: finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backdate sets a file's mtime well into the past. Postfix treats a main.cf
// modified within the last second or so as "still being edited" and re-reads
// it in 300 ms steps, which costs ~2 s per start or reload.
func backdate(path string) error {
	old := time.Now().Add(-time.Hour)
	return os.Chtimes(path, old, old)
}

// processesWithEnv lists the PIDs of processes whose environment contains
// entry (e.g. "MAIL_CONFIG=/dir"): that is how every daemon of one Postfix
// instance can be found, including ones the master lost track of.
func processesWithEnv(entry string) []int {
	var pids []int
	needle := []byte(entry)
	entries, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, path := range entries {
		env, err := os.ReadFile(path)
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, needle) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// alive reports whether pid names a live (not zombie) process.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces or parentheses: look after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitGone waits until none of pids is alive or timeout passes, and returns
// those still alive.
func waitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAll sends SIGKILL to every pid, ignoring ones already gone.
func killAll(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// readPIDFile reads the first number in a pid file.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	fields := bytes.Fields(b)
	if len(fields) == 0 {
		return 0, fmt.Errorf("%s: empty pid file", path)
	}
	return strconv.Atoi(string(fields[0]))
}

// listening reports whether something listens on 127.0.0.1:port (or on the
// IPv4 wildcard), judged from /proc/net/tcp so that probing opens no SMTP
// session the daemon would log and count.
func listening(port int) bool {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	const stateListen = "0A"
	wanted := []string{
		fmt.Sprintf("0100007F:%04X", port), // 127.0.0.1, little-endian hex
		fmt.Sprintf("00000000:%04X", port),
	}
	for _, line := range bytes.Split(table, []byte{'\n'})[1:] {
		fields := bytes.Fields(line)
		if len(fields) < 4 || string(fields[3]) != stateListen {
			continue
		}
		for _, w := range wanted {
			if string(fields[1]) == w {
				return true
			}
		}
	}
	return false
}
