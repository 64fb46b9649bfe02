package wasmtest

import (
	"os"
	"path/filepath"
	"testing"
)

// CompilationCacheDir is a wazero compilation cache directory that every
// test of every package shares, and that outlives the test run: compiling
// a Go plugin takes seconds under the race detector, reading it back from
// the cache milliseconds. Entries are keyed by the module's hash and the
// wazero version, so a stale one is never used, and written by rename, so
// test processes running at once may share it.
//
// It lives in the user's cache directory, not in a world-writable temp
// directory: the cache holds native code that is run as it is, and no
// other user must be able to put any there. Without a user cache
// directory, the test gets a directory of its own.
func CompilationCacheDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		return t.TempDir()
	}
	dir := filepath.Join(base, "wasmilter-test", "wasm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return t.TempDir()
	}
	return dir
}
