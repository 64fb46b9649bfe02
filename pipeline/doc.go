// Package pipeline carries one MTA connection's messages through the plugin
// chain. It is the glue between the milter protocol (package milter) and the
// policy plugins (package plugins), and it owns the per-message state
// neither of them should: the envelope and header as seen so far, the
// message's identity and stamp, the verdict reached, and the changes
// gathered for end of message.
//
// What it guarantees:
//
//   - The MTA is asked only for what is needed: the body only if a plugin
//     reads it. The client's address and HELO name (once per connection),
//     the envelope and the header are always collected: every event and
//     ledger record carries them, and identity and stamp are derived from
//     them.
//   - Per-message state is reset at every MAIL FROM and on abort, so nothing
//     leaks from one message to the next on a reused connection.
//   - Verdicts: the first terminal verdict in config order wins (package
//     plugins). Reject and tempfail at the rcpt hook refuse only that
//     recipient. Accept ends all policy for the message (or, at connect,
//     for the connection): no later plugin is called for it, and changes
//     already gathered are still applied at end of message.
//   - Changes may be asked for at any message hook; the milter protocol
//     allows them only at end of message, so they are gathered in order and
//     sent there, in one write.
//   - The stamp is minted once per message at end of header, after the
//     identity is known; a message carrying a valid stamp of ours keeps it.
package pipeline
