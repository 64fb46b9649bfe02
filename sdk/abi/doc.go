// Package abi is the contract between the wasmilter host and its Wasm plugins:
// the names of the exports and host functions, the hook and verdict codes,
// and the compact binary encoding of what a hook sees (an [Event]) and what it
// answers (an [Answer]). sdk/ABI.md is the prose version of this package.
//
// It is imported by both sides: the host (plugins/) and the Go guest SDK
// (sdk/, built for GOOS=wasip1). It therefore has no dependencies beyond the
// standard library, no unsafe code and nothing specific to either side.
//
// The encoding is a sequence of fields, each a one-byte tag, a uvarint length
// and that many bytes of payload. Unknown tags are skipped, so a newer host
// can send fields an older guest does not know. Measured: decoding a 20-header
// event in a Go guest costs about a microsecond; the JSON equivalent cost
// 200-350 µs, which is why this is not JSON.
package abi
