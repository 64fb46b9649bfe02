package cache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// Default limits of ParseRaw.
const (
	DefaultMaxFields      = 10_000
	DefaultMaxFieldBytes  = 102_400 // Postfix's header_size_limit
	DefaultMaxHeaderBytes = 4 << 20
)

type rawLimits struct{ fields, fieldBytes, headerBytes int }

func (o ParseOptions) rawLimits() rawLimits {
	l := rawLimits{DefaultMaxFields, DefaultMaxFieldBytes, DefaultMaxHeaderBytes}
	if o.MaxFields > 0 {
		l.fields = o.MaxFields
	}
	if o.MaxFieldBytes > 0 {
		l.fieldBytes = o.MaxFieldBytes
	}
	if o.MaxHeaderBytes > 0 {
		l.headerBytes = o.MaxHeaderBytes
	}
	return l
}

// ParseRaw reads a raw header block (up to and including the blank line
// that ends it, or to the end of r) and returns its properties and its
// fields as an MTA would pass them: names as written, values without the
// space after the colon, folds kept as "\r\n" plus the white space.
//
// Unlike Parse it rejects what no MTA would pass on, with an error naming
// the line: a line that is neither a field nor a continuation (no colon), a
// continuation with no field before it, a bad field name, a NUL byte (the
// milter protocol cannot carry one), and anything over the limits in opts.
// go-message reads the fields; the line-by-line check before it exists
// because its errors name neither the line nor the limit that was hit.
func ParseRaw(r io.Reader, opts ParseOptions) (*Properties, []Field, error) {
	block, err := readHeaderBlock(r, opts.rawLimits())
	if err != nil {
		return nil, nil, fmt.Errorf("raw header: %w", err)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(block)))
	if err != nil {
		return nil, nil, fmt.Errorf("raw header: %w", err)
	}
	fields, err := fieldsOf(h)
	if err != nil {
		return nil, nil, fmt.Errorf("raw header: %w", err)
	}
	return Parse(fields, opts), fields, nil
}

// readHeaderBlock returns the header block of r, checked line by line.
func readHeaderBlock(r io.Reader, lim rawLimits) ([]byte, error) {
	// One byte over the limit tells "exactly at the limit" from "over it".
	br := bufio.NewReader(io.LimitReader(r, int64(lim.headerBytes)+1))
	var block []byte
	check := lineChecker{lim: lim}
	for {
		line, err := readLine(br)
		if len(block)+len(line) > lim.headerBytes {
			return nil, fmt.Errorf("line %d: header block is over %d bytes", check.n+1, lim.headerBytes)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", check.n+1, err)
		}
		if len(line) > 0 {
			if cerr := check.line(line); cerr != nil {
				return nil, cerr
			}
			block = append(block, line...)
		}
		if errors.Is(err, io.EOF) || isBlank(line) {
			return block, nil
		}
	}
}

// readLine returns the next line with its line ending, however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// isBlank reports whether line is the empty line that ends a header.
func isBlank(line []byte) bool {
	return string(line) == "\n" || string(line) == "\r\n"
}

// lineChecker validates the physical lines of a header block in order.
type lineChecker struct {
	lim        rawLimits
	n          int    // lines seen
	fields     int    // fields seen
	fieldBytes int    // bytes of the current field so far
	fieldName  string // name of the current field, for errors
}

func (c *lineChecker) line(line []byte) error {
	c.n++
	if i := bytes.IndexByte(line, 0); i >= 0 {
		return fmt.Errorf("line %d: NUL byte at column %d (the milter protocol cannot carry it)", c.n, i+1)
	}
	if isBlank(line) {
		return nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return c.continuation(line)
	}
	return c.fieldStart(line)
}

func (c *lineChecker) continuation(line []byte) error {
	if c.fields == 0 {
		return fmt.Errorf("line %d: continuation line (starts with white space) with no field before it", c.n)
	}
	c.fieldBytes += len(line)
	if c.fieldBytes > c.lim.fieldBytes {
		return fmt.Errorf("line %d: field %s is over %d bytes", c.n, c.fieldName, c.lim.fieldBytes)
	}
	return nil
}

func (c *lineChecker) fieldStart(line []byte) error {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return fmt.Errorf("line %d: no colon: a header field is \"name: value\", got %s", c.n, quoteStart(line))
	}
	name := bytes.TrimRight(line[:colon], " \t") // trailing blanks before the colon occur in the wild
	if err := checkFieldName(name); err != nil {
		return fmt.Errorf("line %d: %w", c.n, err)
	}
	c.fields++
	if c.fields > c.lim.fields {
		return fmt.Errorf("line %d: more than %d header fields", c.n, c.lim.fields)
	}
	c.fieldName, c.fieldBytes = string(name), len(line)
	if c.fieldBytes > c.lim.fieldBytes {
		return fmt.Errorf("line %d: field %s is over %d bytes", c.n, c.fieldName, c.lim.fieldBytes)
	}
	return nil
}

// checkFieldName applies RFC 5322 section 3.6.8: one or more printable
// US-ASCII characters other than the colon.
func checkFieldName(name []byte) error {
	if len(name) == 0 {
		return errors.New("empty field name before the colon")
	}
	for i, b := range name {
		if b < 33 || b > 126 {
			return fmt.Errorf("field name %s: byte 0x%02x at column %d is not printable US-ASCII", quoteStart(name), b, i+1)
		}
	}
	return nil
}

// quoteStart quotes the beginning of a line for an error message; a 64 KB
// line must not become a 64 KB error.
func quoteStart(b []byte) string {
	const max = 40
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// fieldsOf turns go-message's raw fields back into fields as the MTA passes
// them: the name as written (go-message canonicalizes its keys), the value
// after the colon and its blank, folds kept, without the final line ending.
func fieldsOf(h textproto.Header) ([]Field, error) {
	fields := make([]Field, 0, h.Len())
	it := h.Fields()
	for it.Next() {
		raw, err := it.Raw()
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", it.Key(), err)
		}
		colon := bytes.IndexByte(raw, ':')
		if colon < 0 {
			return nil, fmt.Errorf("field %s: no colon in its raw form", it.Key())
		}
		name := bytes.TrimRight(raw[:colon], " \t")
		value := bytes.TrimLeft(raw[colon+1:], " \t")
		value = bytes.TrimSuffix(value, []byte("\r\n"))
		fields = append(fields, Field{Name: string(name), Value: string(value)})
	}
	return fields, nil
}
