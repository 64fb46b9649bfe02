// Package retry owns the durable retry ledger: for every message that was
// deferred, under its stable identity, when it was first seen, each attempt,
// where it stands and what its sender was told, kept so that a retry finds
// it again after a restart (and, with a shared backend, on another node).
//
// # Identity
//
// Records are keyed by stamp.Identity, which is derived only from what the
// message carries (see package stamp). The record's FirstSeen is the time in
// the message's stamp: written once when the record is created and never
// changed, so a message retried after a greylisting 4xx gets the very same
// stamp back. That is the answer to the incident this project started from,
// where a stamp generated twice made a retried message stop matching itself.
//
// # Durability
//
// Defer returns only once the record is durable: with the bbolt backend, the
// write transaction is committed, which includes fdatasync. The pipeline
// answers 4xx only after Defer returned, so no deferral the MTA was told
// about can be lost, whether the server crashes, is killed or loses power.
// Concurrent deferrals share one commit (see Bolt), so the fsync is paid
// once per group, not once per session.
//
// # State machine
//
// Every change is one atomic operation on the store: the record is read,
// the transition decided and the record with its index entry written
// together, so concurrent sessions, admins and nodes never lose an update.
// An operation not in the table fails with an error wrapping ErrTransition
// and changes nothing; an operation other than Defer on an identity with no
// record fails with ErrNotFound.
//
//	operation  from       to         notes
//	---------  ---------  ---------  ---------------------------------------------
//	Defer      (none)     deferred   creates the record; FirstSeen is set once
//	Defer      deferred   deferred   attempt counted
//	Defer      passed     deferred   the same message sent again after it passed
//	Defer      released   released   attempt counted; the admin's release stands
//	Defer      held       held       attempt counted; the hold stands
//	Pass       deferred   passed     kept for audit until purged
//	Pass       released   passed
//	Pass       passed     passed     attempt counted
//	Release    deferred   released   admin: the next attempt passes
//	Release    held       released
//	Release    released   released   no change
//	Hold       deferred   held       admin or policy: quarantine
//	Hold       released   held
//	Hold       held       held       no change
//	Expire     deferred   expired    the permanent answer is stored
//	Expire     released   expired
//	Expire     held       expired
//	Expire     expired    expired    no change: the first answer stands
//
// Expired is final: every later arrival is answered with the stored 5xx
// (Policy.OnArrival), never deferred again, so a message never loops and
// its sender never waits in silence. Passed and expired records are removed
// by Purge after the policy's keep times (Policy.Purges).
//
// # Time
//
// Policy owns every time rule (maximum age, keep times, the expiry text), so
// the pipeline, the sweeper and every backend agree. The ledger keeps times
// in UTC to the microsecond; UpdatedAt comes from the ledger's own clock,
// which tests replace.
//
// # Backends
//
// Bolt, an embedded bbolt file for one node, is the default. Every backend
// runs the transitions of this package (transition.go) on the stored form
// of this package (codec.go) and passes the same suite, retry/ledgertest.
package retry
