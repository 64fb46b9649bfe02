// Package redistest runs a real redis-server for tests: one private
// instance per test on a free 127.0.0.1 port, its data in the test's
// temporary directory, logging every write to an append-only file that is
// fsynced before each reply (so what it acknowledged survives a SIGKILL),
// stopped when the test ends. Fault tests can kill it, freeze it and
// restart it on the same port and directory.
//
// The helpers need the redis-server command (Debian package redis-server).
// Without it a test is skipped, unless WASMILTER_REQUIRE_TOOLS=1 says the
// environment promised it (CI sets it), in which case the test fails: CI
// must never turn a broken install into a green run of skips.
//
// Everything stays on 127.0.0.1; the instance is never a system service.
package redistest
