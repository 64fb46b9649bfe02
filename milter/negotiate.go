package milter

import gomilter "github.com/emersion/go-milter"

// Protocol versions this server speaks. Version 2 is Sendmail 8.11's
// protocol; 6 is Sendmail 8.14+ / Postfix 2.6+ with per-stage "no reply"
// bits, the SMFIP_NR_HDR bit used here, and envelope changes.
const (
	minVersion = 2
	maxVersion = 6
)

// negotiate computes the reply to the MTA's offer.
//
// Policy, and why:
//   - version min(6, offered): the highest both sides speak;
//   - actions: what the session may use, limited to what the MTA offers
//     (an action bit outside the offer makes the MTA drop the milter);
//   - protocol: the SMFIP_NO* bits for every stage the session does not
//     need (each one saves the MTA a round trip per event), SMFIP_NR_HDR
//     when headers are wanted (headers then stream without a reply each),
//     and SMFIP_NOUNKNOWN; all limited to the bits the MTA offered.
//   - never SMFIP_NODATA / SMFIP_NR_DATA: see connHandler.onData.
func negotiate(offer optneg, needs Needs) optneg {
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
	if needs.Headers {
		want |= gomilter.OptNoHeaderReply
	} else {
		want |= gomilter.OptNoHeaders | gomilter.OptNoEOH
	}
	if !needs.Body {
		want |= gomilter.OptNoBody
	}
	return optneg{
		version:  min(offer.version, maxVersion),
		actions:  needs.Actions & offer.actions,
		protocol: want & offer.protocol,
	}
}
