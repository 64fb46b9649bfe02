// Package cache owns one job: remembering what the host has already worked
// out about a message's header, and the small key/value state plugins keep
// between messages, inside a fixed memory budget.
//
// It answers an incident (a mail store's cache of parsed header properties
// that filled at 65,536 entries, was polluted with another message's data,
// and then stalled mail until a restart) by being its opposite:
//
//   - Bounded in entries and in bytes. A full cache evicts; an insert is
//     never refused, except a single item larger than the whole budget,
//     which is counted (RejectedTooLarge) and simply not stored.
//   - Never serves one message's properties to another: every entry carries
//     the SHA-256 of the header it was computed from ([Source]); a lookup
//     with a different source is a [Mismatch], counted, and the entry is
//     dropped instead of served.
//   - Observable ([Cache.Stats], [Cache.Inspect]) and flushable at run time
//     ([Cache.Flush]). Stored values are immutable, so a flush never
//     disturbs a message in flight: its reader keeps its pointer.
//
// [Parse] computes a message's [Properties] once from the header fields the
// MTA passed, with github.com/emersion/go-message doing the parsing:
// RFC 5322 (addresses, dates, Message-ID), RFC 2047 encoded words in any
// charset go-message's charset package knows (imported here for that), and
// RFC 3464 (a delivery report is multipart/report with
// report-type=delivery-status). Parse never fails: what it cannot parse is
// recorded in Properties.Problems. [ParseRaw] reads a raw header block for
// replay, tests and fuzzing, and rejects malformed input with an error that
// names the line.
//
// The key/value store ([Cache.KVGet], [Cache.KVSet], [Cache.KVIncr],
// [Cache.KVDelete]) is namespaced by plugin name and lives in a reserved
// share of the same byte budget (Config.KVShare).
//
// The package does no I/O, starts no goroutines, and knows nothing of Wasm
// or the milter protocol. Its cache core is github.com/hashicorp/golang-lru/v2
// (simplelru, in locked shards); RATIONALE.md in this directory says why
// not github.com/maypok86/otter/v2, with the benchmark numbers.
package cache
