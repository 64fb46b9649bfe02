// Package stamp owns two things every other part of wasmilter relies on to
// recognise a message when it comes back: its identity and its stamp.
//
// The identity is derived only from what the message carries — its
// normalized Message-ID, envelope sender and sorted recipients, or, when
// there is no Message-ID, a fingerprint of the headers that a retry repeats
// unchanged. It never depends on a clock, a queue ID, a client IP or a
// process, so a retry after minutes, after a restart or against another node
// derives the same identity. (The incident this project answers, in
// shared/seeds, was a stamp generated twice.)
//
// The stamp is the identity plus the time it was first seen, written into a
// header ("X-Wasmilter-Stamp: v=1; id=...; t=...; mac=...") with an optional
// HMAC-SHA256 so that a stamp arriving from outside can be told from ours.
// Several keys may be configured for rotation: the first signs, all verify.
//
// The package is pure: no I/O, no storage. Where first-seen times are kept
// is the retry ledger's job.
package stamp
