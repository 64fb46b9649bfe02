package abi

// Header is one header field as the MTA sent it: the value unfolded by
// neither side (continuation lines keep their CRLF + whitespace as the MTA
// passed them) and without the leading space after the colon.
type Header struct {
	Name  string
	Value string
}

// Recipient is an envelope recipient with its ESMTP arguments.
type Recipient struct {
	Addr string
	Args []string
}

// Event is what a hook sees: everything known about the connection and the
// message at that point. Fields not yet known are empty. Big or rarely needed
// data (macros, the stamp, later the body and the ledger record) is not in
// the event; the guest pulls it through host functions.
type Event struct {
	Hook       Hook
	Now        int64  // the host's clock, Unix nanoseconds
	ClientHost string // reverse DNS name as the MTA reports it, or "[ip]"
	ClientAddr string // IP address, or socket path for a local client
	ClientPort int
	Family     string // "inet", "inet6", "unix" or "unknown"
	Helo       string
	QueueID    string // the MTA's queue ID (macro i) once known
	From       string // envelope sender without angle brackets; "" is the null sender
	FromArgs   []string
	Rcpts      []Recipient // at the rcpt hook, the last one is the current one
	Headers    []Header
}

// Event field tags.
const (
	tagHook       = 1
	tagNow        = 2
	tagClientHost = 3
	tagClientAddr = 4
	tagClientPort = 5
	tagFamily     = 6
	tagHelo       = 7
	tagQueueID    = 8
	tagFrom       = 9
	tagFromArg    = 10
	tagRcpt       = 11
	tagHeader     = 12
)

// AppendEvent appends the encoding of e to b.
func AppendEvent(b []byte, e *Event) []byte {
	b = appendUintField(b, tagHook, uint64(e.Hook))
	b = appendUintField(b, tagNow, uint64(e.Now))
	b = appendStringField(b, tagClientHost, e.ClientHost)
	b = appendStringField(b, tagClientAddr, e.ClientAddr)
	if e.ClientPort != 0 {
		b = appendUintField(b, tagClientPort, uint64(e.ClientPort))
	}
	b = appendStringField(b, tagFamily, e.Family)
	b = appendStringField(b, tagHelo, e.Helo)
	b = appendStringField(b, tagQueueID, e.QueueID)
	b = appendStringField(b, tagFrom, e.From)
	for _, a := range e.FromArgs {
		b = append(b, tagFromArg)
		b = appendString(b, a)
	}
	for i := range e.Rcpts {
		rc := &e.Rcpts[i]
		b = appendNested(b, tagRcpt, func(b []byte) []byte {
			b = appendString(b, rc.Addr)
			b = appendUvarint(b, uint64(len(rc.Args)))
			for _, a := range rc.Args {
				b = appendString(b, a)
			}
			return b
		})
	}
	for i := range e.Headers {
		h := &e.Headers[i]
		b = appendNested(b, tagHeader, func(b []byte) []byte {
			b = appendString(b, h.Name)
			return append(b, h.Value...)
		})
	}
	return b
}

// DecodeEvent decodes an event. It is used by guests; the host uses it only
// in tests. Unknown tags are skipped.
func DecodeEvent(p []byte) (Event, error) {
	var e Event
	r := reader{p: p}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return e, err
		}
		switch tag {
		case tagHook:
			v, err := val.uintValue()
			if err != nil {
				return e, err
			}
			e.Hook = Hook(v)
		case tagNow:
			v, err := val.uintValue()
			if err != nil {
				return e, err
			}
			e.Now = int64(v)
		case tagClientHost:
			e.ClientHost = string(val.p)
		case tagClientAddr:
			e.ClientAddr = string(val.p)
		case tagClientPort:
			v, err := val.uintValue()
			if err != nil {
				return e, err
			}
			e.ClientPort = int(v)
		case tagFamily:
			e.Family = string(val.p)
		case tagHelo:
			e.Helo = string(val.p)
		case tagQueueID:
			e.QueueID = string(val.p)
		case tagFrom:
			e.From = string(val.p)
		case tagFromArg:
			e.FromArgs = append(e.FromArgs, string(val.p))
		case tagRcpt:
			rc, err := decodeRecipient(val)
			if err != nil {
				return e, err
			}
			e.Rcpts = append(e.Rcpts, rc)
		case tagHeader:
			name, err := val.string()
			if err != nil {
				return e, err
			}
			e.Headers = append(e.Headers, Header{Name: name, Value: string(val.p)})
		}
	}
	return e, nil
}

func decodeRecipient(r reader) (Recipient, error) {
	var rc Recipient
	var err error
	if rc.Addr, err = r.string(); err != nil {
		return rc, err
	}
	n, err := r.uvarint()
	if err != nil {
		return rc, err
	}
	if n > uint64(len(r.p)) { // each argument takes at least one byte
		return rc, errorf("%d arguments in %d bytes", n, len(r.p))
	}
	for i := uint64(0); i < n; i++ {
		s, err := r.string()
		if err != nil {
			return rc, err
		}
		rc.Args = append(rc.Args, s)
	}
	return rc, nil
}
