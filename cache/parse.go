package cache

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // RFC 2047 words in every charset x/text knows, not only UTF-8
	"github.com/emersion/go-message/mail"
)

// ParseOptions tune Parse and ParseRaw. The zero value is ready to use.
type ParseOptions struct {
	StampHeader string // header read into Properties.Stamp; "" = DefaultStampHeader

	// Limits of ParseRaw, which reads untrusted bytes. Parse has none: its
	// fields come from the MTA, which bounds them, and the pipeline caps
	// their number.
	MaxFields      int // header fields; 0 = 10,000 (the pipeline's own cap)
	MaxFieldBytes  int // one field with its continuation lines; 0 = 102,400 (Postfix's header_size_limit)
	MaxHeaderBytes int // the whole header block; 0 = 4 MiB
}

func (o ParseOptions) stampHeader() string {
	if o.StampHeader == "" {
		return DefaultStampHeader
	}
	return o.StampHeader
}

// maxProblems bounds Properties.Problems: a header of 10,000 broken fields
// must not turn into 10,000 cached strings.
const maxProblems = 16

// maxProblemLen bounds one problem's text; library errors may quote input.
const maxProblemLen = 200

// fieldID names the fields Parse reads.
type fieldID int

const (
	fMessageID fieldID = iota
	fFrom
	fSender
	fTo
	fCc
	fDate
	fSubject
	fContentType
	fListID
	fAutoSubmitted
	fPrecedence
	fReceived
	numFieldIDs
)

// fieldNames are the names used in the go-message header Parse builds and
// in Problems.
var fieldNames = [numFieldIDs]string{
	"Message-ID", "From", "Sender", "To", "Cc", "Date", "Subject",
	"Content-Type", "List-Id", "Auto-Submitted", "Precedence", "Received",
}

// singleFields may occur at most once (RFC 5322 section 3.6, RFC 2045,
// RFC 2919, RFC 3834); a duplicate is a Problem and the first one counts.
var singleFields = [numFieldIDs]bool{
	fMessageID: true, fFrom: true, fSender: true, fTo: true, fCc: true, fDate: true,
	fSubject: true, fContentType: true, fListID: true, fAutoSubmitted: true,
}

// lookupField maps a field name, in any case, to the field Parse reads.
func lookupField(name string) (fieldID, bool) {
	var buf [16]byte // longer than any name we read
	if len(name) > len(buf) {
		return 0, false
	}
	lower := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower) { // no allocation: the compiler switches on the bytes
	case "message-id":
		return fMessageID, true
	case "from":
		return fFrom, true
	case "sender":
		return fSender, true
	case "to":
		return fTo, true
	case "cc":
		return fCc, true
	case "date":
		return fDate, true
	case "subject":
		return fSubject, true
	case "content-type":
		return fContentType, true
	case "list-id":
		return fListID, true
	case "auto-submitted":
		return fAutoSubmitted, true
	case "precedence":
		return fPrecedence, true
	case "received":
		return fReceived, true
	}
	return 0, false
}

// problems collects what could not be parsed, bounded by maxProblems.
type problems struct {
	list    []string
	dropped int
}

func (pr *problems) add(field, format string, args ...any) {
	if len(pr.list) >= maxProblems {
		pr.dropped++
		return
	}
	msg := field + ": " + fmt.Sprintf(format, args...)
	if len(msg) > maxProblemLen {
		msg = strings.ToValidUTF8(msg[:maxProblemLen], "") + "..."
	}
	pr.list = append(pr.list, msg)
}

func (pr *problems) result() []string {
	if pr.dropped > 0 {
		pr.list[len(pr.list)-1] = fmt.Sprintf("... and %d more problems", pr.dropped+1)
	}
	if len(pr.list) == 0 {
		return nil
	}
	return pr.list[:len(pr.list):len(pr.list)]
}

// Parse computes a message's properties from its header fields. It never
// fails and never panics: whatever cannot be parsed is left empty and
// explained in Problems. The result shares no memory with fields.
func Parse(fields []Field, opts ParseOptions) *Properties {
	p := &Properties{HeaderCount: len(fields)}
	var pr problems
	hd := collect(fields, opts.stampHeader(), p)
	for id, n := range hd.counts {
		if singleFields[id] && n > 1 {
			pr.add(fieldNames[id], "%d fields where RFC 5322 allows one; the first is used", n)
		}
	}
	p.ReceivedCount = hd.counts[fReceived]
	parseIdentity(hd, p, &pr)
	parseAddresses(hd, p, &pr)
	parseDate(hd, p, &pr)
	parseContentType(hd, p, &pr)
	parseListHeaders(hd, p, &pr)
	p.Subject = decodedText(hd, fSubject, &pr)
	p.Stamp = validUTF8("stamp header", p.Stamp, &pr)
	p.Problems = pr.result()
	p.pack()
	return p
}

// header is what Parse reads from the fields, unfolded: the first value of
// each field it knows, every To and Cc value (a duplicated To still
// delivers to all it lists), and how often each field occurred.
type header struct {
	first  [numFieldIDs]string
	has    [numFieldIDs]bool
	counts [numFieldIDs]int
	to, cc []string
}

// collect makes one pass over the fields: it sizes the header, finds the
// stamp, and keeps what Parse reads.
func collect(fields []Field, stampHeader string, p *Properties) *header {
	hd := &header{}
	stampSeen := false
	for _, f := range fields {
		p.HeaderBytes += len(f.Name) + len(": ") + len(f.Value) + len("\r\n")
		if !stampSeen && strings.EqualFold(f.Name, stampHeader) {
			p.Stamp, stampSeen = unfold(f.Value), true
		}
		id, ok := lookupField(f.Name)
		if !ok {
			continue
		}
		hd.counts[id]++
		if id == fReceived {
			continue
		}
		v := unfold(f.Value)
		switch id {
		case fTo:
			hd.to = append(hd.to, v)
		case fCc:
			hd.cc = append(hd.cc, v)
		}
		if !hd.has[id] {
			hd.first[id], hd.has[id] = v, true
		}
	}
	return hd
}

// unfold undoes RFC 5322 folding (section 2.2.3) and trims the value. Each
// fold (a line break and the white space around it) becomes one space, as
// go-message does when it reads a raw header, so a Subject folded by one
// relay and not by another reads the same. A bare CR or LF, which the MTA
// would not pass inside a value, counts as a fold.
func unfold(v string) string {
	if strings.IndexAny(v, "\r\n") < 0 {
		return strings.TrimSpace(v)
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); {
		if v[i] != '\r' && v[i] != '\n' {
			b = append(b, v[i])
			i++
			continue
		}
		b = bytes.TrimRight(b, " \t")
		for i < len(v) && strings.IndexByte("\r\n \t", v[i]) >= 0 {
			i++
		}
		b = append(b, ' ')
	}
	return strings.TrimSpace(string(b))
}

func parseIdentity(hd *header, p *Properties, pr *problems) {
	if !hd.has[fMessageID] {
		return // RFC 5322 says SHOULD, not MUST; identity then falls back to a fingerprint
	}
	// go-message parses a msg-id (CFWS, quoted local parts, domain
	// literals) only through a Header.
	var h mail.Header
	h.Set("Message-Id", hd.first[fMessageID])
	id, err := h.MessageID()
	if err != nil || id == "" {
		pr.add(fieldNames[fMessageID], "not a msg-id: %v", orEmpty(err))
		return
	}
	p.MessageID = validUTF8(fieldNames[fMessageID], lowerDomain(id), pr)
}

func parseAddresses(hd *header, p *Properties, pr *problems) {
	if from, ok := firstAddress(hd, fFrom, pr); ok {
		p.From, p.FromName = from.Address, validUTF8("From display name", from.Name, pr)
	} else if !hd.has[fFrom] {
		pr.add(fieldNames[fFrom], "missing (RFC 5322 requires it)")
	}
	if sender, ok := firstAddress(hd, fSender, pr); ok {
		p.Sender = sender.Address
	}
	p.ToCount = countAddresses(hd.to, fTo, pr)
	p.CcCount = countAddresses(hd.cc, fCc, pr)
}

// firstAddress returns the first address of the first field id, with its
// domain lowercased.
func firstAddress(hd *header, id fieldID, pr *problems) (mail.Address, bool) {
	v := hd.first[id]
	if v == "" {
		return mail.Address{}, false
	}
	list, err := mail.ParseAddressList(v)
	if err != nil {
		pr.add(fieldNames[id], "%v", err)
		return mail.Address{}, false
	}
	if len(list) == 0 {
		return mail.Address{}, false // an empty group, "undisclosed-recipients:;"
	}
	a := *list[0]
	a.Address = validUTF8(fieldNames[id], lowerDomain(a.Address), pr)
	return a, true
}

// countAddresses counts the addresses in every value of field id.
func countAddresses(values []string, id fieldID, pr *problems) int {
	n := 0
	for _, v := range values {
		if v == "" {
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			pr.add(fieldNames[id], "%v", err)
			continue
		}
		n += len(list)
	}
	return n
}

func parseDate(hd *header, p *Properties, pr *problems) {
	if !hd.has[fDate] {
		pr.add(fieldNames[fDate], "missing (RFC 5322 requires it)")
		return
	}
	d, err := parseDateValue(hd.first[fDate])
	if err != nil {
		pr.add(fieldNames[fDate], "%v", err)
		return
	}
	p.Date = d
}

// parseDateValue parses an RFC 5322 date-time. It tries the layout nearly
// every MTA and MUA writes ("Sun, 22 Nov 2026 06:59:57 +0000") first:
// net/mail.ParseDate, which go-message uses and which decides everything
// else, walks a list of layouts and allocates an error for each miss,
// which was half of Parse's cost.
func parseDateValue(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		return t, nil
	}
	return netmail.ParseDate(v)
}

// parseContentType reads the media type and recognises an RFC 3464
// delivery status notification: multipart/report with
// report-type=delivery-status. mime.ParseMediaType (what go-message's
// Header.ContentType calls, without decoding parameter values we do not
// need) lowercases the media type and parameter names; the parameter value
// is compared without case (RFC 2045 section 5.1).
func parseContentType(hd *header, p *Properties, pr *problems) {
	if !hd.has[fContentType] {
		return
	}
	mediaType, params, err := mime.ParseMediaType(hd.first[fContentType])
	if err != nil {
		pr.add(fieldNames[fContentType], "%v", err)
		return
	}
	p.ContentType = validUTF8(fieldNames[fContentType], mediaType, pr)
	p.IsDeliveryReport = mediaType == "multipart/report" &&
		strings.EqualFold(strings.TrimSpace(params["report-type"]), "delivery-status")
}

func parseListHeaders(hd *header, p *Properties, pr *problems) {
	if hd.has[fListID] {
		p.ListID = listIdentifier(decodedText(hd, fListID, pr))
	}
	p.AutoSubmitted = keyword(validUTF8(fieldNames[fAutoSubmitted], hd.first[fAutoSubmitted], pr))
	p.Precedence = keyword(validUTF8(fieldNames[fPrecedence], hd.first[fPrecedence], pr))
}

// listIdentifier returns the list-id of an RFC 2919 List-Id value
// ("phrase <list-id>"), or the whole value when it has no angle brackets.
func listIdentifier(v string) string {
	open := strings.LastIndexByte(v, '<')
	if open < 0 {
		return v
	}
	end := strings.IndexByte(v[open:], '>')
	if end < 0 {
		return v
	}
	return strings.TrimSpace(v[open+1 : open+end])
}

// keyword returns the first token of a value such as "auto-replied;
// owner=..." (RFC 3834) or "bulk", lowercased.
func keyword(v string) string {
	if i := strings.IndexAny(v, "; \t("); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(v)
}

// wordDecoder decodes RFC 2047 encoded words in every charset go-message
// knows (its charset package, imported above, registers them), as
// go-message's own address parser does.
var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	return message.CharsetReader(charset, r)
}}

// decodedText returns the RFC 2047 decoded value of the first field id. If
// it cannot be decoded (an unknown charset, say), the raw text is kept and
// the reason recorded.
func decodedText(hd *header, id fieldID, pr *problems) string {
	s := hd.first[id]
	if !strings.Contains(s, "=?") {
		return validUTF8(fieldNames[id], s, pr) // no encoded words
	}
	dec, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		pr.add(fieldNames[id], "cannot decode encoded words (%v); kept undecoded", err)
		dec = s
	}
	return validUTF8(fieldNames[id], dec, pr)
}

// validUTF8 returns s with bytes that are not UTF-8 replaced by U+FFFD. Raw
// 8-bit header bytes in an unknown charset are common in the wild; guessing
// the charset would make the properties depend on a guess, and passing the
// bytes on would hand plugins strings that are not text.
func validUTF8(field, s string, pr *problems) string {
	if utf8.ValidString(s) {
		return s
	}
	pr.add(field, "8-bit bytes that are not UTF-8 (no RFC 2047 encoding); replaced with U+FFFD")
	return strings.ToValidUTF8(s, "\uFFFD")
}

// lowerDomain lowercases the part after the last '@': domains are
// case-insensitive, local parts are not (RFC 5321 section 2.4).
func lowerDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	domain := addr[at+1:]
	if !hasUpper(domain) {
		return addr
	}
	return addr[:at+1] + strings.ToLower(domain)
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func orEmpty(err error) any {
	if err == nil {
		return "empty"
	}
	return err
}
