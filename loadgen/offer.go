package loadgen

import (
	"fmt"

	gomilter "github.com/emersion/go-milter"
)

// Offer is what the MTA proposes in option negotiation.
type Offer struct {
	Version  uint32
	Actions  gomilter.OptAction
	Protocol gomilter.OptProtocol
}

// Postfix's protocol masks per milter_protocol version (milter8.c): the
// SMFIP_NO* events a milter of that version may turn off, and from 6 on
// every "no reply" bit, SMFIP_SKIP, SMFIP_RCPT_REJ and SMFIP_HDR_LEADSPC.
const (
	protoV2 = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom |
		gomilter.OptNoRcptTo | gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH
	protoV3 = protoV2 | gomilter.OptNoUnknown
	protoV4 = protoV3 | gomilter.OptNoData
	protoV6 = gomilter.OptProtocol(0x1fffff)
	// Postfix offers every action it implements whatever the version.
	postfixActions = gomilter.OptAction(0x1ff)
)

// PostfixOffer is what Postfix sends with milter_protocol = version
// (2, 3, 4 or 6; Postfix's default and wasmilter's advice is 6).
func PostfixOffer(version int) (Offer, error) {
	masks := map[int]gomilter.OptProtocol{2: protoV2, 3: protoV3, 4: protoV4, 6: protoV6}
	p, ok := masks[version]
	if !ok {
		return Offer{}, fmt.Errorf("milter protocol version %d: want 2, 3, 4 or 6", version)
	}
	return Offer{Version: uint32(version), Actions: postfixActions, Protocol: p}, nil
}
