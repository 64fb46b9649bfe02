// Package tmpfstest mounts a small tmpfs for a test that needs a disk it
// can fill up (the retry ledger's disk-full test): a real file system that
// answers ENOSPC, not a mock of one. Mounting takes root (or
// CAP_SYS_ADMIN); without it the test is skipped with a message saying
// so, or fails when WASMILTER_REQUIRE_TOOLS=1 (CI, which runs as root).
package tmpfstest
