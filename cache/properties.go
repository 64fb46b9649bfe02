package cache

import (
	"time"
	"unsafe"
)

// Field is a header field as the MTA passed it: the name, and the value
// without the space after the colon. A folded value keeps its folds, as
// "\n\t" (Postfix) or "\r\n\t".
type Field struct{ Name, Value string }

// DefaultStampHeader is the header read into Properties.Stamp unless
// ParseOptions.StampHeader names another. It matches the stamp package's
// default without importing it.
const DefaultStampHeader = "X-Wasmilter-Stamp"

// Properties are what the host works out once per message from its header,
// so that no plugin has to parse headers itself. A stored Properties value
// is shared by every reader and must never be modified.
type Properties struct {
	MessageID        string    // normalized: no angle brackets, no CFWS, domain lowercased; "" if missing or invalid
	From             string    // first From address (addr-spec, domain lowercased)
	FromName         string    // its display name, RFC 2047 decoded
	Sender           string    // Sender address (addr-spec, domain lowercased)
	ToCount          int       // addresses in To fields (not fields)
	CcCount          int       // addresses in Cc fields
	Date             time.Time // zero if missing or unparsable (then a Problem says why)
	Subject          string    // RFC 2047 decoded; undecodable text is kept raw with a Problem
	ContentType      string    // media type, lowercased, e.g. "multipart/report"; "" if absent
	Stamp            string    // unfolded value of the first stamp header, if any
	ReceivedCount    int       // Received fields: the hop count
	ListID           string    // RFC 2919 list identifier, without angle brackets
	AutoSubmitted    string    // RFC 3834 keyword, lowercased ("auto-generated", ...)
	Precedence       string    // lowercased ("bulk", "list", "junk")
	IsDeliveryReport bool      // multipart/report; report-type=delivery-status (RFC 3464)
	HeaderCount      int       // header fields
	HeaderBytes      int       // header size as on the wire: name + ": " + value + CRLF per field
	Problems         []string  // what could not be parsed, and why; never a reason to fail
}

// propertiesOverhead is the fixed part of a stored Properties: the struct
// itself (string and slice headers, ints, the time.Time with its location
// pointer).
const propertiesOverhead = int64(unsafe.Sizeof(Properties{}))

// Size estimates the memory a Properties value holds: the struct, its
// strings and its Problems slice. Parse packs every string into a single
// allocation, so for its results the estimate is the real footprint up to
// the allocator's rounding; for hand-built values strings may share memory
// with something else, and then Size counts them as if they did not.
func (p *Properties) Size() int64 {
	n := propertiesOverhead
	for _, s := range p.stringFields() {
		n += int64(len(*s))
	}
	n += int64(cap(p.Problems)) * int64(unsafe.Sizeof(""))
	for _, s := range p.Problems {
		n += int64(len(s))
	}
	return n
}

// stringFields lists the string fields, so that sizing and packing cannot
// forget one when a field is added.
func (p *Properties) stringFields() [10]*string {
	return [10]*string{&p.MessageID, &p.From, &p.FromName, &p.Sender, &p.Subject,
		&p.ContentType, &p.Stamp, &p.ListID, &p.AutoSubmitted, &p.Precedence}
}

// pack copies every string of p into one fresh allocation. The strings Parse
// derives may point into the MTA's buffers (a trimmed value is a substring of
// the original); once stored, they would pin those buffers and make the
// cache's byte accounting a lie. One allocation instead of ten also keeps
// Parse cheap.
func (p *Properties) pack() {
	fields := p.stringFields()
	total := 0
	for _, s := range fields {
		total += len(*s)
	}
	for _, s := range p.Problems {
		total += len(s)
	}
	if total == 0 {
		return
	}
	buf := make([]byte, 0, total)
	for _, s := range fields {
		buf = append(buf, *s...)
	}
	for _, s := range p.Problems {
		buf = append(buf, s...)
	}
	all := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is never written again
	off := 0
	take := func(n int) string {
		s := all[off : off+n]
		off += n
		return s
	}
	for _, s := range fields {
		*s = take(len(*s))
	}
	for i, s := range p.Problems {
		p.Problems[i] = take(len(s))
	}
}
