package sdk

import (
	"errors"
	"fmt"
	"slices"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Decoding an event without feeding the garbage collector.
//
// abi.DecodeEvent allocates a string per field. Measured in a Go guest under
// wazero, a 20-header event then costs ~25 µs per call, nearly all of it the
// Go runtime's collector, whose cycles take milliseconds in Wasm and come
// around every few megabytes allocated. So the SDK decodes in one pass that
// copies only the small envelope fields (handlers may keep those strings)
// and leaves the header fields where the host wrote them, recording their
// offsets in a reused index; a header value is copied out only when a handler
// asks for it (see Headers). TestDecodeMatchesABI and FuzzDecode hold this
// decoder to abi.DecodeEvent's results, so the two cannot drift apart.

// Event field tags, as in sdk/abi/event.go.
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

// headerSpan locates one header field in the encoded event: the name is
// raw[nameStart:nameEnd] and the value raw[nameEnd:valueEnd].
type headerSpan struct{ nameStart, nameEnd, valueEnd int32 }

// decodeInto decodes the event in raw: the envelope into ev (headers left
// nil) and the header fields into spans, whose backing array is reused.
//
// It walks the fields in one loop with the one-byte varint case inline: in a
// Go guest every function call goes through the Go stack in linear memory,
// and a method call per length made the header walk ~1 µs per field.
func decodeInto(raw []byte, ev *abi.Event, spans []headerSpan) ([]headerSpan, error) {
	for i := 0; i < len(raw); {
		tag := raw[i]
		n, start, err := uvarintAt(raw, i+1)
		if err != nil {
			return spans, fmt.Errorf("field %d: %w", tag, err)
		}
		if n > uint64(len(raw)-start) {
			return spans, fmt.Errorf("field %d: %w: length %d past the end (%d bytes left)", tag, errMalformed, n, len(raw)-start)
		}
		end := start + int(n)
		i = end
		if tag == tagHeader {
			span, err := headerSpanAt(raw, start, end)
			if err != nil {
				return spans, err
			}
			spans = append(spans, span)
			continue
		}
		if err := setEnvelopeField(ev, tag, decoder{p: raw[start:end:end], off: start}); err != nil {
			return spans, err
		}
	}
	ev.Rcpts = reuseRcpts(ev.Rcpts)
	ev.FromArgs = reuseStrings(&envelopeStrings.lastFromArgs, ev.FromArgs)
	return spans, nil
}

// The lists are decoded into scratch space, then handed out as the list the
// previous call handed out when it still holds the same values (it does
// unless the envelope changed, or a handler wrote into it), else as a copy
// that becomes the list to hand out next time.
var rcptScratch []abi.Recipient

func reuseRcpts(decoded []abi.Recipient) []abi.Recipient {
	if len(decoded) == 0 {
		return nil
	}
	last := envelopeStrings.lastRcpts
	if !slices.EqualFunc(decoded, last, func(a, b abi.Recipient) bool {
		return a.Addr == b.Addr && slices.Equal(a.Args, b.Args)
	}) {
		last = slices.Clone(decoded)
		envelopeStrings.lastRcpts = last
	}
	clear(decoded) // the scratch keeps no strings alive
	rcptScratch = decoded[:0]
	return last
}

func reuseStrings(last *[]string, decoded []string) []string {
	if len(decoded) == 0 {
		return nil
	}
	if !slices.Equal(decoded, *last) {
		*last = slices.Clone(decoded)
	}
	clear(decoded)
	fromArgsScratch = decoded[:0]
	return *last
}

var fromArgsScratch []string

// uvarintAt reads the varint at raw[i] and returns it with the index after
// it. The one-byte case (every tag and most lengths) is inlined.
func uvarintAt(raw []byte, i int) (uint64, int, error) {
	if i < len(raw) && raw[i] < 0x80 {
		return uint64(raw[i]), i + 1, nil
	}
	d := decoder{p: raw[min(i, len(raw)):], off: i}
	v, err := d.uvarint()
	return v, d.off, err
}

// headerSpanAt reads a header payload raw[start:end]: a length-prefixed name,
// then the value up to end.
func headerSpanAt(raw []byte, start, end int) (headerSpan, error) {
	n, nameStart, err := uvarintAt(raw[:end], start)
	if err != nil {
		return headerSpan{}, err
	}
	if n > uint64(end-nameStart) {
		return headerSpan{}, fmt.Errorf("%w: length %d past the end (%d bytes left)", errMalformed, n, end-nameStart)
	}
	return headerSpan{nameStart: int32(nameStart), nameEnd: int32(nameStart + int(n)), valueEnd: int32(end)}, nil
}

// envelopeStrings holds the strings of the last envelope decoded. The same
// envelope comes with every hook of a message and the client's with every
// message of a session, so an unchanged field is given the string it had
// last time instead of a new copy: strings are immutable, so a handler that
// kept the old one is not affected.
var envelopeStrings struct {
	clientHost, clientAddr, family, helo, queueID, from string
	fromArgs, rcptAddrs                                 []string
	lastFromArgs                                        []string
	lastRcpts                                           []abi.Recipient
}

// reuse returns *last if it holds b's bytes, else a new string, which it
// remembers. The comparison does not allocate.
func reuse(last *string, b []byte) string {
	if string(b) != *last {
		*last = string(b)
	}
	return *last
}

// reuseAt is reuse for the i-th element of a list of strings.
func reuseAt(list *[]string, i int, b []byte) string {
	if i >= len(*list) {
		*list = append(*list, string(b))
		return (*list)[i]
	}
	return reuse(&(*list)[i], b)
}

func setEnvelopeField(ev *abi.Event, tag byte, val decoder) error {
	var err error
	es := &envelopeStrings
	switch tag {
	case tagHook:
		var v uint64
		v, err = val.uintValue()
		ev.Hook = abi.Hook(v)
	case tagNow:
		var v uint64
		v, err = val.uintValue()
		ev.Now = int64(v)
	case tagClientPort:
		var v uint64
		v, err = val.uintValue()
		ev.ClientPort = int(v)
	case tagClientHost:
		ev.ClientHost = reuse(&es.clientHost, val.p)
	case tagClientAddr:
		ev.ClientAddr = reuse(&es.clientAddr, val.p)
	case tagFamily:
		ev.Family = reuse(&es.family, val.p)
	case tagHelo:
		ev.Helo = reuse(&es.helo, val.p)
	case tagQueueID:
		ev.QueueID = reuse(&es.queueID, val.p)
	case tagFrom:
		ev.From = reuse(&es.from, val.p)
	case tagFromArg:
		if ev.FromArgs == nil {
			ev.FromArgs = fromArgsScratch[:0]
		}
		ev.FromArgs = append(ev.FromArgs, reuseAt(&es.fromArgs, len(ev.FromArgs), val.p))
	case tagRcpt:
		var rc abi.Recipient
		rc, err = val.recipient(len(ev.Rcpts))
		if ev.Rcpts == nil {
			ev.Rcpts = rcptScratch[:0]
		}
		ev.Rcpts = append(ev.Rcpts, rc)
	}
	return err
}

var errMalformed = errors.New("malformed event")

// decoder reads the field encoding. off is the offset of p[0] in the whole
// event, so header spans can point into it. Every method checks bounds.
type decoder struct {
	p   []byte
	off int
}

func (d *decoder) done() bool { return len(d.p) == 0 }

func (d *decoder) skip(n int) {
	d.p = d.p[n:]
	d.off += n
}

func (d *decoder) uvarint() (uint64, error) {
	var v uint64
	for i := 0; i < len(d.p) && i < 10; i++ {
		c := d.p[i]
		if i == 9 && c > 1 {
			break // more than 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.skip(i + 1)
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: bad varint", errMalformed)
}

// bytes reads a length-prefixed byte string and returns it as a decoder.
func (d *decoder) bytes() (decoder, error) {
	n, err := d.uvarint()
	if err != nil {
		return decoder{}, err
	}
	if n > uint64(len(d.p)) {
		return decoder{}, fmt.Errorf("%w: length %d past the end (%d bytes left)", errMalformed, n, len(d.p))
	}
	out := decoder{p: d.p[:n:n], off: d.off}
	d.skip(int(n))
	return out, nil
}

func (d *decoder) string() (string, error) {
	b, err := d.bytes()
	return string(b.p), err
}

// uintValue reads a payload that is exactly one uvarint.
func (d decoder) uintValue() (uint64, error) {
	v, err := d.uvarint()
	if err != nil || !d.done() {
		return 0, fmt.Errorf("%w: bad integer field", errMalformed)
	}
	return v, nil
}

// recipient reads the i-th recipient: an address and a counted list of
// ESMTP arguments.
func (d decoder) recipient(i int) (abi.Recipient, error) {
	var rc abi.Recipient
	addr, err := d.bytes()
	if err != nil {
		return rc, err
	}
	rc.Addr = reuseAt(&envelopeStrings.rcptAddrs, i, addr.p)
	n, err := d.uvarint()
	if err != nil {
		return rc, err
	}
	if n > uint64(len(d.p)) { // each argument takes at least one byte
		return rc, fmt.Errorf("%w: %d arguments in %d bytes", errMalformed, n, len(d.p))
	}
	if n > 0 {
		rc.Args = make([]string, 0, n)
	}
	for range n {
		a, err := d.string()
		if err != nil {
			return rc, err
		}
		rc.Args = append(rc.Args, a)
	}
	return rc, nil
}
