package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("abi: malformed encoding")

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendStringField appends a field holding s, or nothing when s is empty.
func appendStringField(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, tag)
	return appendString(b, s)
}

func appendUintField(b []byte, tag byte, v uint64) []byte {
	b = append(b, tag)
	var tmp [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(tmp[:], v)
	b = appendUvarint(b, uint64(n))
	return append(b, tmp[:n]...)
}

// appendNested appends a field whose payload is written by fill. The length
// prefix is reserved at its largest size for payloads under 16 KiB and the
// payload moved only when the guess was wrong, so nesting stays one pass.
func appendNested(b []byte, tag byte, fill func([]byte) []byte) []byte {
	b = append(b, tag)
	start := len(b)
	b = append(b, 0, 0) // room for a 2-byte uvarint (payload < 16384)
	b = fill(b)
	n := len(b) - start - 2
	var tmp [binary.MaxVarintLen64]byte
	w := binary.PutUvarint(tmp[:], uint64(n))
	if w == 2 {
		copy(b[start:], tmp[:2])
		return b
	}
	// Shift the payload in place (copy handles the overlap) to fit a 1-byte
	// or a longer length prefix; a temporary copy would allocate per field.
	end := len(b)
	if w > 2 {
		b = append(b, make([]byte, w-2)...)
	}
	copy(b[start+w:], b[start+2:end])
	copy(b[start:], tmp[:w])
	return b[:end+w-2]
}

// reader decodes the field encoding. Every method checks bounds; a reader
// never panics on hostile input.
type reader struct {
	p []byte
}

func (r *reader) done() bool { return len(r.p) == 0 }

func (r *reader) byte() (byte, error) {
	if len(r.p) == 0 {
		return 0, errorf("truncated")
	}
	c := r.p[0]
	r.p = r.p[1:]
	return c, nil
}

func (r *reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		return 0, errorf("bad varint")
	}
	r.p = r.p[n:]
	return v, nil
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.p)) {
		return nil, errorf("length %d past the end (%d bytes left)", n, len(r.p))
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b, nil
}

func (r *reader) string() (string, error) {
	b, err := r.bytes()
	return string(b), err
}

// field reads one tagged field and returns its payload as a reader.
func (r *reader) field() (byte, reader, error) {
	tag, err := r.byte()
	if err != nil {
		return 0, reader{}, err
	}
	b, err := r.bytes()
	if err != nil {
		return 0, reader{}, errorf("field %d: %v", tag, err)
	}
	return tag, reader{p: b}, nil
}

// uintValue reads a field payload that is a single uvarint.
func (r reader) uintValue() (uint64, error) {
	v, n := binary.Uvarint(r.p)
	if n <= 0 || n != len(r.p) {
		return 0, errorf("bad integer field")
	}
	return v, nil
}
