//go:build !linux

package tmpfstest

import "testing"

// Mount skips: tmpfs mounts are a Linux test facility here.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("tmpfs mounts need Linux")
	return ""
}
