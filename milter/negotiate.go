package milter

import gomilter "github.com/emersion/go-milter"

// Protocol versions this server speaks. Version 2 is Sendmail 8.11's
// protocol; 6 is Sendmail 8.14+ / Postfix 2.6+ with per-stage "no reply"
// bits, the SMFIP_NR_HDR bit used here, and envelope changes.
const (
	minVersion = 2
	maxVersion = 6
)

// negotiate computes the reply to the MTA's offer. quietOK says whether
// the connection may use the per-stage no-reply bits (see noReplyBits).
//
// Policy, and why:
//   - version min(6, offered): the highest both sides speak;
//   - actions: what the session may use, limited to what the MTA offers
//     (an action bit outside the offer makes the MTA drop the milter);
//   - protocol, always limited to the bits the MTA offered:
//   - SMFIP_NO* for every stage the session does not need: each saves
//     the MTA a round trip per event;
//   - SMFIP_NOEOH when headers are wanted but the body is not: the server
//     calls EndOfHeaders itself when end of message arrives and answers
//     there (see connHandler.onEndOfMessage), one round trip less per
//     message with the same outcome for the SMTP client, which hears the
//     answer only after its final dot either way;
//   - SMFIP_NR_HDR when headers are wanted: headers stream without a
//     reply each;
//   - when quietOK: SMFIP_NR_CONN, _HELO, _MAIL, _RCPT for the stages the
//     Session always continues, and SMFIP_NODATA (no Session hears DATA;
//     the server answers it "continue" itself);
//   - SMFIP_NOUNKNOWN;
//   - never SMFIP_NR_DATA, _EOH or _BODY: see noReplyBits.
func negotiate(offer optneg, needs Needs, quietOK bool) optneg {
	want := gomilter.OptNoUnknown
	if !needs.Connect {
		want |= gomilter.OptNoConnect
	}
	if !needs.Helo {
		want |= gomilter.OptNoHelo
	}
	if !needs.Mail {
		want |= gomilter.OptNoMailFrom
	}
	if !needs.Rcpt {
		want |= gomilter.OptNoRcptTo
	}
	switch {
	case !needs.Headers:
		want |= gomilter.OptNoHeaders | gomilter.OptNoEOH
	case !needs.Body:
		want |= gomilter.OptNoHeaderReply | gomilter.OptNoEOH
	default:
		want |= gomilter.OptNoHeaderReply
	}
	if !needs.Body {
		want |= gomilter.OptNoBody
	}
	if quietOK {
		want |= gomilter.OptNoData | noReplyBits(needs.AlwaysContinue)
	}

	return optneg{
		version:  min(offer.version, maxVersion),
		actions:  needs.Actions & offer.actions,
		protocol: want & offer.protocol,
	}
}

// noReplyBits maps the stages a Session always continues to their
// SMFIP_NR_* bits.
//
// Why only over unix sockets (quietOK): Postfix leaves Nagle's algorithm on
// for milter sockets over TCP, so a small write of the MTA that follows one
// the milter did not answer may wait for the milter's delayed ACK (up to
// ~40 ms). Measured through a real Postfix over TCP (docs/BENCHMARKS.md):
// SMFIP_NODATA halved the throughput (the headers then follow RCPT with no
// DATA answer in between). SMFIP_NR_CONN/_HELO/_MAIL/_RCPT did not stall in
// that run and saved the milter some CPU, but no throughput; whether they
// stall depends on the kernels' ACK heuristics at both ends, and a stall
// costs ~40 ms a message, so over TCP every stage but the headers is
// answered. A unix socket has no Nagle and no delayed ACK: there a
// no-reply stage is a pure saving, the MTA neither waits for the milter
// nor reads an answer. SMFIP_NR_DATA, _EOH and _BODY are never asked for:
// DATA and EOH are skipped instead where possible, and body chunks are
// followed by more body.
func noReplyBits(s Stages) gomilter.OptProtocol {
	var p gomilter.OptProtocol
	if s&StageConnect != 0 {
		p |= gomilter.OptNoConnReply
	}
	if s&StageHelo != 0 {
		p |= gomilter.OptNoHeloReply
	}
	if s&StageMail != 0 {
		p |= gomilter.OptNoMailReply
	}
	if s&StageRcpt != 0 {
		p |= gomilter.OptNoRcptReply
	}
	return p
}
