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
// write transaction is committed, which includes fdatasync; with Redis, the
// transaction was acknowledged (durable as far as its appendfsync setting
// makes it; docs/REDIS.md). The pipeline
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
// # Delay notices: the outbox
//
// A sender whose message waits is told so (RFC 3464 "delayed"), once per
// step of the delay policy. Each record keeps an outbox, one entry per
// step ever claimed (Record.Outbox); Record.Notices lists the notices the
// relay accepted. A node sends the notice of step K only between a won
// ClaimNotice and its CompleteNotice or ReleaseNotice:
//
//	call            entry before                        entry after
//	--------------  ----------------------------------  --------------------------
//	ClaimNotice     none, or pending and due,           leased by the caller until
//	                or leased with the lease run out    now+lease (won)
//	ClaimNotice     leased and live (any node, caller   unchanged (not won, no
//	                included), pending not due, final   error)
//	CompleteNotice  not final; sent from any node,      sent (added to Notices),
//	                failed or suppressed only from      failed or suppressed:
//	                the holder                          final
//	ReleaseNotice   leased by the caller                pending until retryAt
//
// Each call is one atomic operation on the record, like the transitions
// above, so of any number of nodes claiming a step at once exactly one
// wins, and the record's state and index are untouched. Claims are refused
// (ErrTransition) on passed and expired records: the message was delivered,
// or its sender's MTA bounces it on the 5xx it now gets. The one exception
// is ClearedNoticeStep, the "no longer delayed" notice, which may be
// claimed only on a passed record. The delay policy's steps count from 1;
// FinalNoticeStep is the "failed" notice sent when the policy gives a
// message up (claimed before the record is expired). The Sweeper walks the
// deferred and held records (and passed ones, when asked) and hands each to
// the caller, which asks the delay policy and sends what it is told to
// through this outbox (package notify).
//
// # The guarantee: at least once, and at most once but for one crash window
//
// Per record and step, the outbox gives:
//
//   - At most one live lease at any time, on every node sharing the store:
//     without a crash or an overrun lease, the notice is sent once.
//   - Once CompleteNotice has recorded it sent (or permanently failed), no
//     node ever claims the step again: no second copy after that.
//   - No loss: a step claimed by a node that then crashes, hangs, or loses
//     the store is claimable again when its lease runs out; a temporary
//     SMTP failure releases it for a retry. Only a 5xx ends it unsent.
//
// Across a crash between the relay's 250 and the commit of CompleteNotice,
// the notice is sent again when the lease runs out: delivery is at least
// once, not exactly once. The same happens if a send outlives its lease, so
// a node bounds each send by its lease's end (OutboxEntry.Until) less a
// margin for clock skew between nodes; and a node never reclaims its own
// live lease, so overlapping sweeps of one node cannot send a step twice.
//
// At most once would be the other choice: treat a lease that ran out as
// "maybe sent" and never retry it. That loses the notice on every crash or
// kill during a send (the whole SMTP conversation, not just the instant
// after the 250), which is exactly the silence this project exists to end,
// and it cannot tell a crash before the send from one after it. A second
// "your message is still delayed" is harmless and rare (it needs a crash in
// a window of milliseconds); a missing one leaves a sender guessing for
// days. The duplicate also carries the first copy's Message-ID
// (NoticeMessageID), so a store or client that drops duplicate Message-IDs
// drops it.
//
// # Time
//
// Policy owns every time rule (maximum age, keep times, the expiry text), so
// the pipeline, the sweeper and every backend agree. The ledger keeps times
// in UTC to the microsecond; UpdatedAt comes from the ledger's own clock,
// which tests replace. Outbox times (leases, retry times, when a notice
// was sent) come from the caller's now, the clock the sweeper and the
// policy decide by; nodes sharing a store must keep their clocks in step
// (NTP), well within a lease.
//
// # Backends
//
// Bolt, an embedded bbolt file for one node, is the default. Redis keeps
// the ledger in one Redis shared by several nodes (MX hosts): each change
// is a WATCH of the record, the same Go transition, and one MULTI/EXEC of
// the record and its index entry, run again if another node changed the
// record meanwhile; docs/REDIS.md says how to set Redis up. Every backend
// runs the transitions of this package (transition.go) on the stored form
// of this package (codec.go) and passes the same suite, retry/ledgertest.
package retry
