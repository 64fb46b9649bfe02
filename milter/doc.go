// Package milter is wasmilter's milter protocol server: it accepts
// connections from Postfix or Sendmail, negotiates options, runs the
// per-connection protocol state machine, keeps the MTA's macros, and hands
// each event to a Session supplied by a Backend. It knows nothing about
// WebAssembly, configuration files or storage; its only disk access is
// creating a unix socket (Listen).
//
// # Protocol
//
// The Sendmail milter protocol, versions 2 to 6, as documented with
// go-milter (milter-protocol.txt, milter-protocol-extras.txt) and as
// implemented by libmilter and Postfix's milter8 client. go-milter's
// exported constants and types name the codes and bits; its server is not
// used (it answers with version 2, ignores the MTA's offer, and has no
// timeouts or shutdown). Where SMTP rules apply it follows RFC 5321 (EHLO
// inside a transaction resets it), RFC 5322 (header names and folding of
// header values the server sends) and RFC 3463 (enhanced status codes in
// custom replies).
//
// # Negotiation policy
//
// The server replies with version min(6, offered), the actions the Session
// needs that the MTA offers, and protocol bits only from the MTA's offer:
//
//   - SMFIP_NO* for every stage the Session does not need (saving a round
//     trip per event) and SMFIP_NOUNKNOWN;
//   - SMFIP_NR_HDR when headers are wanted (headers then stream without a
//     reply each), and SMFIP_NOEOH when the body is not wanted too: the
//     server calls EndOfHeaders itself at end of message and answers there;
//   - on unix sockets only: SMFIP_NR_CONN, _HELO, _MAIL and _RCPT for the
//     stages the Session declares it always continues
//     (Needs.AlwaysContinue), and SMFIP_NODATA;
//   - never SMFIP_NR_DATA, _EOH or _BODY.
//
// Over TCP, Postfix leaves Nagle's algorithm on for milter sockets: an
// event the milter does not answer can make the MTA's next small write
// wait for a delayed ACK, ~40 ms a message. Measured through a real
// Postfix, SMFIP_NODATA over TCP halved the throughput, so over TCP
// every stage except the headers is answered (negotiate.go has the
// numbers' summary, docs/BENCHMARKS.md the runs). An event the MTA sends
// although the Session does not need it is answered "continue" without
// calling the Session. A modification whose action was not negotiated is
// dropped with a warning. After SMFIC_QUIT_NC the next Session keeps the
// first negotiation: one that answers at a stage negotiated no-reply
// cannot be heard, so the connection is closed and the MTA applies its
// milter_default_action.
//
// # State machine (per connection)
//
//	OPTNEG                      first packet, exactly once
//	CONNECT                     at most once per SMTP session
//	HELO*                       any time outside a message (inside: aborts it)
//	MAIL RCPT* DATA HEADER* EOH BODY* EOM
//	                            one message; phases only move forward;
//	                            stages negotiated away are simply absent
//	ABORT                       ends the open message (no-op without one)
//	MACRO, UNKNOWN              any time
//	QUIT_NC                     ends the SMTP session; CONNECT follows on the
//	                            same connection with a fresh Session
//	QUIT                        closes the connection
//
// A message ends with EndOfMessage, or with Abort when it ended any other
// way (ABORT, a new MAIL, QUIT_NC, a lost connection, or the Session's own
// message-ending reply), so each message sees exactly one of the two.
// Per-message macros are forgotten when the message ends; connect and helo
// macros stay. Anything that breaks the protocol — an unknown command, a
// truncated or oversized packet, RCPT or EOM outside a message, a phase
// going backwards — is logged as a warning and closes that connection only;
// the MTA then applies its milter_default_action. A panicking Session is
// recovered, logged with its stack, and its connection closed.
//
// # Writes
//
// Every reply batch (the end-of-message modifications together with the
// final reply) is encoded into a reused buffer and sent with one write, so
// it leaves in one segment; TCP_NODELAY stays on (Go's default). Reading
// reuses a pooled bufio.Reader and one payload buffer per connection.
package milter
