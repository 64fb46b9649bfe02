package milter

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseAddress(t *testing.T) {
	cases := []struct {
		spec, network, address string
	}{
		{"inet:127.0.0.1:8891", "tcp", "127.0.0.1:8891"},
		{"inet:[::1]:8891", "tcp", "[::1]:8891"},
		{"inet:localhost:8891", "tcp", "localhost:8891"},
		{"INET:localhost:8891", "tcp", "localhost:8891"},
		{"inet:8891@127.0.0.1", "tcp", "127.0.0.1:8891"},
		{"inet:8891@localhost", "tcp", "localhost:8891"},
		{"inet:8891", "tcp", ":8891"},
		{"inet6:8891@::1", "tcp6", "[::1]:8891"},
		{"inet6:8891@[::1]", "tcp6", "[::1]:8891"},
		{"inet6:[::1]:8891", "tcp6", "[::1]:8891"},
		{"unix:/run/wasmilter/milter.sock", "unix", "/run/wasmilter/milter.sock"},
		{"local:/run/milter.sock", "unix", "/run/milter.sock"},
		{"unix:relative.sock", "unix", "relative.sock"},
		{"/run/milter.sock", "unix", "/run/milter.sock"},
	}
	for _, tc := range cases {
		network, address, err := ParseAddress(tc.spec)
		if err != nil || network != tc.network || address != tc.address {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tc.spec, network, address, err, tc.network, tc.address)
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	cases := []struct{ spec, wantErr string }{
		{"", "missing transport prefix"},
		{"milter.sock", "missing transport prefix"},
		{"tcp:127.0.0.1:25", `unknown transport "tcp"`},
		{"unix:", "empty socket path"},
		{"inet:127.0.0.1", "want host:port"},
		{"inet:127.0.0.1:http", `port "http"`},
		{"inet:127.0.0.1:70000", `port "70000"`},
		{"inet:127.0.0.1:-1", `port "-1"`},
		{"inet:::1:8891", "IPv6 address must be written in brackets"},
		{"inet::8891", "empty host"},
		{"inet:99999@127.0.0.1", `port "99999"`},
		{"inet:8891@", "empty host after '@'"},
		{"inet6:::1", `want "port@host" or "[host]:port"`},
	}
	for _, tc := range cases {
		_, _, err := ParseAddress(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseAddress(%q) error %v, want one containing %q", tc.spec, err, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tc.spec) && tc.spec != "" {
			t.Errorf("ParseAddress(%q) error %q does not name the input", tc.spec, err)
		}
	}
}

func TestListenTCP(t *testing.T) {
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().Network() != "tcp" {
		t.Errorf("network %s", ln.Addr().Network())
	}
	ln6, err := Listen("inet6:0@::1", 0)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln6.Close()
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes; t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "mt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenUnixModeAndStaleSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "m.sock")
	ln, err := Listen("unix:"+path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr %q, want the socket's place %q (MTAs connect there)", got, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want srw-rw----", fi.Mode())
	}
	// A live socket is not stolen.
	if _, err := Listen("unix:"+path, 0o660); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen on a live socket: %v", err)
	}

	// Leave a stale socket file behind, as a crash would.
	ln.(*UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	ln, err = Listen("local:"+path, 0o600)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestListenRefusesToRemoveRegularFile(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "data")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:"+path, 0o660); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("regular file damaged: %q %v", b, err)
	}
}

// TestUnixSocketHasItsPermissionsBeforeItAppears: the socket is bound in a
// private directory and reaches its path only with its final mode, so no
// local user can connect in between, whatever the umask.
func TestUnixSocketHasItsPermissionsBeforeItAppears(t *testing.T) {
	dir := shortTempDir(t)
	path := filepath.Join(dir, "m.sock")
	old := syscall.Umask(0) // the worst umask: a socket at its path would be srwxrwxrwx
	defer syscall.Umask(old)
	var checked bool
	socketBound = func(private string) {
		checked = true
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("the socket is at %s before its permissions are set", path)
		}
		fi, err := os.Stat(filepath.Dir(private))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 || filepath.Dir(filepath.Dir(private)) != dir {
			t.Errorf("the socket is bound in %s (mode %v), want a private 0700 directory next to its path", filepath.Dir(private), fi.Mode().Perm())
		}
	}
	defer func() { socketBound = func(string) {} }()
	ln, err := Listen("unix:"+path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("the bind hook was not called")
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v %v, want srw-rw----", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind next to the socket: %v", entries)
	}
	// It works, and Close removes it.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ln.Close()
	if _, err := os.Lstat(path); err == nil {
		t.Error("Close left the socket file")
	}
}

func TestUnixSocketOwnerAndGroup(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "m.sock")
	if _, err := ListenSocket("unix:"+path, SocketOptions{Mode: 0o660, Owner: "no-such-user-wasmilter"}); err == nil ||
		!strings.Contains(err.Error(), `socket owner "no-such-user-wasmilter"`) {
		t.Fatalf("unknown owner: %v", err)
	}
	if _, err := os.Lstat(path); err == nil {
		t.Fatal("a socket was created for a refused owner")
	}
	if os.Geteuid() != 0 {
		// Giving a file away takes root; the error must say so plainly.
		_, err := ListenSocket("unix:"+path, SocketOptions{Mode: 0o660, Owner: "65534"})
		if err == nil || !strings.Contains(err.Error(), "setting owner 65534") {
			t.Fatalf("chown as non-root: %v", err)
		}
		t.Skip("not root: the owner and group themselves are not testable")
	}
	ln, err := ListenSocket("unix:"+path, SocketOptions{Mode: 0o660, Owner: "65534", Group: "65533"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 65534 || st.Gid != 65533 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket uid %d gid %d mode %v, want 65534 65533 0660", st.Uid, st.Gid, fi.Mode().Perm())
	}
	// Names are looked up (root exists everywhere).
	path2 := filepath.Join(filepath.Dir(path), "n.sock")
	ln2, err := ListenSocket("unix:"+path2, SocketOptions{Owner: "root", Group: "root"})
	if err != nil {
		t.Fatal(err)
	}
	ln2.Close()
}
