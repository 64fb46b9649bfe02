package sdk

import "bytes"

// Headers is a read-only view of a message's header fields in the order the
// MTA sent them. The fields stay where the host wrote them until a handler
// asks: Get, Lookup and Values copy out only the values they return, so a
// handler that looks at two headers of twenty pays for two. Lookups scan
// the fields, which for the tens of fields of a message beats building a map
// on every call.
//
// A Headers is valid only during the hook call that produced it (the host
// writes the next event over it); using it later panics. The strings it
// returns are copies and may be kept.
type Headers struct {
	raw   []byte       // the encoded event, in the exchange buffer
	spans []headerSpan // where each field is in raw
	call  uint64       // the hook call this view belongs to
}

// Len returns the number of header fields.
func (h Headers) Len() int {
	h.check()
	return len(h.spans)
}

// All returns a copy of every field in order. It copies every name and
// value; prefer Get or Values for the fields you need.
func (h Headers) All() []Header {
	h.check()
	if len(h.spans) == 0 {
		return nil
	}
	out := make([]Header, len(h.spans))
	for i, s := range h.spans {
		out[i] = Header{Name: string(h.raw[s.nameStart:s.nameEnd]), Value: string(h.raw[s.nameEnd:s.valueEnd])}
	}
	return out
}

// Get returns the value of the first field called name (case-insensitive),
// or "" when there is none.
func (h Headers) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup is Get that also tells whether such a field exists, so an empty
// header can be told from a missing one.
func (h Headers) Lookup(name string) (value string, ok bool) {
	h.check()
	for _, s := range h.spans {
		if h.nameIs(s, name) {
			return string(h.raw[s.nameEnd:s.valueEnd]), true
		}
	}
	return "", false
}

// Values returns the values of every field called name (case-insensitive), in
// order; the position in the result plus one is the occurrence number that
// ChangeHeader and DeleteHeader take.
func (h Headers) Values(name string) []string {
	h.check()
	var out []string
	for _, s := range h.spans {
		if h.nameIs(s, name) {
			out = append(out, string(h.raw[s.nameEnd:s.valueEnd]))
		}
	}
	return out
}

// nameIs compares a field's name without copying it; []byte(name) of a
// short name does not escape and so stays on the stack.
func (h Headers) nameIs(s headerSpan, name string) bool {
	return int(s.nameEnd-s.nameStart) == len(name) && bytes.EqualFold(h.raw[s.nameStart:s.nameEnd], []byte(name))
}

// check refuses a view kept past its call: its bytes now belong to another
// event, and silently answering from them would be worse than stopping.
func (h Headers) check() {
	if h.raw != nil && h.call != currentCall {
		panic("sdk: Headers used after the hook call that produced it returned; keep the strings, not the Headers")
	}
}
