package abi

// Properties are the header properties the host parsed once for a message
// (the answer of the properties host function), so plugins need not parse
// headers themselves. Strings are decoded (RFC 2047) where the header
// allows encoded words; Date is Unix seconds, 0 when missing or unparsable.
type Properties struct {
	MessageID        string // normalized: no angle brackets, domain lowercased
	From             string // first From address
	FromName         string // its display name
	Sender           string
	ToCount          int
	CcCount          int
	Date             int64
	Subject          string
	ContentType      string // media type, lowercased
	ReceivedCount    int    // Received: fields, a hop count
	ListID           string
	AutoSubmitted    string
	Precedence       string
	IsDeliveryReport bool // multipart/report; report-type=delivery-status
	HeaderCount      int
	HeaderBytes      int
	Problems         []string // what could not be parsed, and why
}

const (
	tagPropMessageID = iota + 1
	tagPropFrom
	tagPropFromName
	tagPropSender
	tagPropToCount
	tagPropCcCount
	tagPropDate
	tagPropSubject
	tagPropContentType
	tagPropReceived
	tagPropListID
	tagPropAutoSubmitted
	tagPropPrecedence
	tagPropIsDSN
	tagPropHeaderCount
	tagPropHeaderBytes
	tagPropProblem
)

// AppendProperties appends the encoding of p to b.
func AppendProperties(b []byte, p *Properties) []byte {
	for _, f := range []struct {
		tag byte
		s   string
	}{
		{tagPropMessageID, p.MessageID}, {tagPropFrom, p.From}, {tagPropFromName, p.FromName},
		{tagPropSender, p.Sender}, {tagPropSubject, p.Subject}, {tagPropContentType, p.ContentType},
		{tagPropListID, p.ListID}, {tagPropAutoSubmitted, p.AutoSubmitted}, {tagPropPrecedence, p.Precedence},
	} {
		b = appendStringField(b, f.tag, f.s)
	}
	for _, f := range []struct {
		tag byte
		v   int64
	}{
		{tagPropToCount, int64(p.ToCount)}, {tagPropCcCount, int64(p.CcCount)}, {tagPropDate, p.Date},
		{tagPropReceived, int64(p.ReceivedCount)}, {tagPropHeaderCount, int64(p.HeaderCount)},
		{tagPropHeaderBytes, int64(p.HeaderBytes)},
	} {
		if f.v > 0 {
			b = appendUintField(b, f.tag, uint64(f.v))
		}
	}
	if p.IsDeliveryReport {
		b = appendUintField(b, tagPropIsDSN, 1)
	}
	for _, s := range p.Problems {
		b = append(b, tagPropProblem)
		b = appendString(b, s)
	}
	return b
}

// DecodeProperties decodes properties.
func DecodeProperties(data []byte) (Properties, error) {
	var p Properties
	strs := map[byte]*string{
		tagPropMessageID: &p.MessageID, tagPropFrom: &p.From, tagPropFromName: &p.FromName,
		tagPropSender: &p.Sender, tagPropSubject: &p.Subject, tagPropContentType: &p.ContentType,
		tagPropListID: &p.ListID, tagPropAutoSubmitted: &p.AutoSubmitted, tagPropPrecedence: &p.Precedence,
	}
	ints := map[byte]*int{
		tagPropToCount: &p.ToCount, tagPropCcCount: &p.CcCount, tagPropReceived: &p.ReceivedCount,
		tagPropHeaderCount: &p.HeaderCount, tagPropHeaderBytes: &p.HeaderBytes,
	}
	r := reader{p: data}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return p, err
		}
		switch {
		case strs[tag] != nil:
			*strs[tag] = string(val.p)
		case tag == tagPropProblem:
			p.Problems = append(p.Problems, string(val.p))
		case ints[tag] != nil, tag == tagPropDate, tag == tagPropIsDSN:
			v, err := val.uintValue()
			if err != nil {
				return p, err
			}
			switch {
			case tag == tagPropDate:
				p.Date = int64(v)
			case tag == tagPropIsDSN:
				p.IsDeliveryReport = v != 0
			default:
				*ints[tag] = int(v)
			}
		}
	}
	return p, nil
}
