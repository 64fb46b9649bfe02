package sdk

import (
	"errors"
	"fmt"

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
func decodeInto(raw []byte, ev *abi.Event, spans []headerSpan) ([]headerSpan, error) {
	d := decoder{p: raw}
	for !d.done() {
		tag, val, err := d.field()
		if err != nil {
			return spans, err
		}
		if tag == tagHeader {
			span, err := val.headerSpan()
			if err != nil {
				return spans, err
			}
			spans = append(spans, span)
			continue
		}
		if err := setEnvelopeField(ev, tag, val); err != nil {
			return spans, err
		}
	}
	return spans, nil
}

func setEnvelopeField(ev *abi.Event, tag byte, val decoder) error {
	var err error
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
		ev.ClientHost = string(val.p)
	case tagClientAddr:
		ev.ClientAddr = string(val.p)
	case tagFamily:
		ev.Family = string(val.p)
	case tagHelo:
		ev.Helo = string(val.p)
	case tagQueueID:
		ev.QueueID = string(val.p)
	case tagFrom:
		ev.From = string(val.p)
	case tagFromArg:
		ev.FromArgs = append(ev.FromArgs, string(val.p))
	case tagRcpt:
		var rc abi.Recipient
		rc, err = val.recipient()
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

// field reads one tagged field and returns its payload.
func (d *decoder) field() (byte, decoder, error) {
	if len(d.p) == 0 {
		return 0, decoder{}, fmt.Errorf("%w: truncated", errMalformed)
	}
	tag := d.p[0]
	d.skip(1)
	payload, err := d.bytes()
	if err != nil {
		return 0, decoder{}, fmt.Errorf("field %d: %w", tag, err)
	}
	return tag, payload, nil
}

// uintValue reads a payload that is exactly one uvarint.
func (d decoder) uintValue() (uint64, error) {
	v, err := d.uvarint()
	if err != nil || !d.done() {
		return 0, fmt.Errorf("%w: bad integer field", errMalformed)
	}
	return v, nil
}

// headerSpan reads a header payload: a length-prefixed name, then the value
// up to the end of the field.
func (d decoder) headerSpan() (headerSpan, error) {
	name, err := d.bytes()
	if err != nil {
		return headerSpan{}, err
	}
	return headerSpan{nameStart: int32(name.off), nameEnd: int32(d.off), valueEnd: int32(d.off + len(d.p))}, nil
}

// recipient reads an address and a counted list of ESMTP arguments.
func (d decoder) recipient() (abi.Recipient, error) {
	var rc abi.Recipient
	var err error
	if rc.Addr, err = d.string(); err != nil {
		return rc, err
	}
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
