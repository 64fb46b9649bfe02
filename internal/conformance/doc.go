// Package conformance holds the ABI conformance tests that every guest SDK
// must pass: the Go SDK (sdk/), the C SDK (sdk/c) and the AssemblyScript
// SDK (sdk/assemblyscript). Each SDK's "nolottery" example — examples/c,
// examples/assemblyscript, and testdata/go here for Go — is built from
// source with its own toolchain, loaded through the real plugin host
// (plugins.NewHost, Host.Load) and held to one scenario: ABI version and
// export signatures, the hooks reported, config handling and its errors, a
// headers hook that reads a header and rejects with an exact reply, an
// add_header action, and host function round trips (macro, log).
//
// The C and AssemblyScript toolchains are optional on a developer machine:
// without them those guests are skipped with a message saying what to
// install. With WASMILTER_REQUIRE_TOOLS=1 (set by .ci/run) a missing
// toolchain is a failure.
package conformance
