// Package loadgen measures a milter by playing the MTA: it opens milter
// connections the way Postfix does (one per SMTP session, several messages
// each), sends every event of every message with Postfix's macros, reads
// the verdicts and modifications, and reports throughput, latency
// percentiles, what the milter answered and, given its PID, the milter
// process's CPU time per message. It measures any milter — wasmilter,
// go-milter's server, a libmilter filter such as OpenDKIM — so they can be
// compared under the same load. cmd/wasmilter-bench is its command line.
//
// # Why not go-milter's client
//
// go-milter v0.5.0's ClientSession drives wasmilter's own tests, but a load
// generator has to behave like the MTA whose load it stands for, and that
// client differs from Postfix where it matters here:
//
//   - it refuses a milter that answers an older protocol version unless the
//     offer was cut down to version 2's bits; Postfix offers version 6 and
//     accepts any version from 2 up, so go-milter's own server (which always
//     answers 2) could not be measured with a Postfix-like offer;
//   - it cannot send SMFIC_DATA, which Postfix sends (with the DATA macros)
//     to every milter of version 4 and up;
//   - it rejects SMFIR_SKIP, which libmilter filters may send during the body;
//   - it writes every packet with its own write and a fresh 4 KiB buffer,
//     where Postfix buffers a whole batch (macros + event, all headers) and
//     writes it when it next waits for a reply. Both change what the milter
//     sees on its socket, and the allocations cost the load generator CPU it
//     shares with the milter on a small machine.
//
// So the MTA side here is a small wire client of its own (wire.go, mta.go),
// written from Postfix's milter8 client, reusing go-milter's exported names
// for the protocol's codes and bits. The latency histogram is HdrHistogram
// (github.com/HdrHistogram/hdrhistogram-go): constant memory whatever the
// run's length, mergeable per worker, three significant digits.
//
// # What one message looks like on the wire
//
//	[session]  OPTNEG; MACRO C + CONNECT; MACRO H + HELO
//	[message]  MACRO M + MAIL; (MACRO R + RCPT)*; MACRO T + DATA (v4+);
//	           (MACRO L + HEADER)*; MACRO N + EOH; (MACRO B + BODY)*;
//	           MACRO E + EOM -> modifications, final reply; ABORT
//	[end]      QUIT
//
// Macros are sent even for events the milter negotiated away (Postfix does);
// an event negotiated away (SMFIP_NO*) is not sent, and no reply is awaited
// where the milter asked for none (SMFIP_NR_*). ABORT follows every message,
// as Postfix's smtpd sends it when it resets the transaction. A non-continue
// reply ends the message there; at CONNECT or HELO it ends the session.
// Latency is measured from MAIL to the final reply (from CONNECT for a
// session-level verdict). Any protocol violation by the milter — an unknown
// reply, a malformed one, a modification it did not negotiate, a
// modification outside end of message — is an error, and errors stop the
// run (see Config.MaxErrors).
package loadgen
