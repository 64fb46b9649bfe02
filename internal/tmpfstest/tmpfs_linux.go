//go:build linux

package tmpfstest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a fresh directory and returns it.
// It is unmounted when the test ends (lazily, so a file left open by a
// failed test does not keep it mounted).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := "size=" + strconv.FormatInt(size, 10) + ",mode=0700"
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		unavailable(t, "mounting a tmpfs ("+opts+") is not permitted here: "+err.Error()+"; run as root")
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// unavailable skips, or fails under WASMILTER_REQUIRE_TOOLS=1.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("WASMILTER_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg + " (WASMILTER_REQUIRE_TOOLS=1 makes that a failure)")
	}
	t.Skip(msg)
}
