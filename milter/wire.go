package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	gomilter "github.com/emersion/go-milter"
)

// This file owns the milter wire format: framing of packets (a 4-byte
// big-endian length, a command byte, a payload) and the decoders for the
// payload of each MTA command. The decoders are pure functions over the
// payload so they can be fuzzed on their own.

// Command codes go-milter does not export.
const (
	cmdUnknown      = 'U' // SMFIC_UNKNOWN: an SMTP command the MTA did not recognise
	replyAddRcptPar = '2' // SMFIR_ADDRCPT_PAR: add recipient with ESMTP args
)

// Sizes of the pooled per-connection buffers. A body chunk is at most
// 64 KiB, so a buffer that grew past maxPooledBuffer came from an unusually
// large packet and is left to the garbage collector instead of pinning
// memory in the pool.
const (
	readerSize       = 16 << 10
	maxPooledBuffer  = 128 << 10
	defaultMaxPacket = 1 << 20
)

// protocolError is a violation of the milter protocol by the MTA (or by
// whatever is on the other end of the socket). The connection is closed;
// the MTA then applies its default action (milter_default_action).
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "milter protocol error: " + e.msg }

func protoErrorf(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// errEmptyPacket is a packet whose length field is 0: it lacks even the
// command byte.
var errEmptyPacket = &protocolError{msg: "packet of length 0 (no command byte)"}

// packetTooLargeError reports a length field above the configured limit.
type packetTooLargeError struct{ length, limit int }

func (e *packetTooLargeError) Error() string {
	return fmt.Sprintf("milter protocol error: packet length %d exceeds limit %d", e.length, e.limit)
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readerSize) }}
	bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
)

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	bufferPool.Put(b)
}

// packetReader reads framed packets into one reused payload buffer, so the
// steady state of a connection reads without allocating.
type packetReader struct {
	r       *bufio.Reader
	payload *[]byte
	max     int
}

func newPacketReader(r io.Reader, maxPacket int) *packetReader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return &packetReader{r: br, payload: getBuffer(), max: maxPacket}
}

// release hands the pooled reader and buffer back; the packetReader must not
// be used afterwards.
func (p *packetReader) release() {
	if p.r != nil {
		p.r.Reset(nil)
		readerPool.Put(p.r)
		p.r = nil
	}
	if p.payload != nil {
		putBuffer(p.payload)
		p.payload = nil
	}
}

// next reads one packet. The returned data aliases the reused buffer and is
// valid only until the following call. An io.EOF before the first byte of a
// packet is returned as is (the MTA hung up between packets); an EOF inside
// a packet becomes io.ErrUnexpectedEOF (a truncated packet).
func (p *packetReader) next() (cmd byte, data []byte, err error) {
	head, err := p.r.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) && len(head) > 0 {
			return 0, nil, fmt.Errorf("reading packet length: %w", io.ErrUnexpectedEOF)
		}
		return 0, nil, err
	}
	length := binary.BigEndian.Uint32(head)
	_, _ = p.r.Discard(4)
	if length == 0 {
		return 0, nil, errEmptyPacket
	}
	if uint64(length) > uint64(p.max) {
		return 0, nil, &packetTooLargeError{length: int(length), limit: p.max}
	}
	buf := (*p.payload)[:0]
	if cap(buf) < int(length) {
		buf = make([]byte, 0, int(length))
	}
	buf = buf[:length]
	*p.payload = buf
	if _, err := io.ReadFull(p.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("reading %d-byte packet: %w", length, err)
	}
	return buf[0], buf[1:], nil
}

// optneg is the content of an SMFIC_OPTNEG packet, in either direction.
type optneg struct {
	version  uint32
	actions  gomilter.OptAction
	protocol gomilter.OptProtocol
}

// decodeOptneg parses the MTA's offer. Extra bytes after the three words
// are tolerated: newer MTAs may append data older milters ignore.
func decodeOptneg(data []byte) (optneg, error) {
	if len(data) < 12 {
		return optneg{}, protoErrorf("option negotiation payload is %d bytes, want 12", len(data))
	}
	return optneg{
		version:  binary.BigEndian.Uint32(data),
		actions:  gomilter.OptAction(binary.BigEndian.Uint32(data[4:])),
		protocol: gomilter.OptProtocol(binary.BigEndian.Uint32(data[8:])),
	}, nil
}

// cString splits one NUL-terminated string off the front of data.
func cString(data []byte, what string) (s, rest []byte, err error) {
	for i, b := range data {
		if b == 0 {
			return data[:i], data[i+1:], nil
		}
	}
	return nil, nil, protoErrorf("%s is not NUL-terminated", what)
}

// decodeConnect parses SMFIC_CONNECT: hostname, family, and for every family
// but unknown a port (uint16) and an address.
func decodeConnect(data []byte) (ConnInfo, error) {
	host, rest, err := cString(data, "connect hostname")
	if err != nil {
		return ConnInfo{}, err
	}
	if len(rest) == 0 {
		return ConnInfo{}, protoErrorf("connect packet lacks the protocol family")
	}
	info := ConnInfo{Host: string(host)}
	family := gomilter.ProtoFamily(rest[0])
	rest = rest[1:]
	switch family {
	case gomilter.FamilyUnknown:
		info.Family = "unknown"
		return info, nil
	case gomilter.FamilyInet:
		info.Family = "inet"
	case gomilter.FamilyInet6:
		info.Family = "inet6"
	case gomilter.FamilyUnix:
		info.Family = "unix"
		rest = skipUnixPort(rest)
	default:
		return ConnInfo{}, protoErrorf("connect packet has unknown protocol family %q", byte(family))
	}
	if info.Family != "unix" {
		if len(rest) < 2 {
			return ConnInfo{}, protoErrorf("connect packet lacks the port")
		}
		info.Port = int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
	}
	addr, rest, err := cString(rest, "connect address")
	if err != nil {
		return ConnInfo{}, err
	}
	if len(rest) != 0 {
		return ConnInfo{}, protoErrorf("connect packet has %d trailing bytes", len(rest))
	}
	info.Addr = string(addr)
	return info, nil
}

// skipUnixPort drops the (always zero) port that Sendmail and Postfix send
// for unix-socket clients. Some clients (go-milter's) omit it; a path never
// contains NUL, so two leading NUL bytes followed by more data can only be
// the port.
func skipUnixPort(rest []byte) []byte {
	if len(rest) >= 3 && rest[0] == 0 && rest[1] == 0 {
		return rest[2:]
	}
	return rest
}

// decodeHelo parses SMFIC_HELO.
func decodeHelo(data []byte) (string, error) {
	name, _, err := cString(data, "HELO name")
	if err != nil {
		return "", err
	}
	return string(name), nil
}

// decodeEnvelope parses SMFIC_MAIL and SMFIC_RCPT: an address in angle
// brackets, then ESMTP arguments, each NUL-terminated.
func decodeEnvelope(data []byte, what string) (addr string, args []string, err error) {
	raw, rest, err := cString(data, what+" address")
	if err != nil {
		return "", nil, err
	}
	for len(rest) > 0 {
		var arg []byte
		arg, rest, err = cString(rest, what+" ESMTP argument")
		if err != nil {
			return "", nil, err
		}
		args = append(args, string(arg))
	}
	return stripAngles(string(raw)), args, nil
}

// stripAngles turns "<a@b>" into "a@b" and "<>" into "". An address the MTA
// sent without brackets is returned unchanged.
func stripAngles(addr string) string {
	if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
		return addr[1 : len(addr)-1]
	}
	return addr
}

// decodeHeader parses SMFIC_HEADER: name and value, each NUL-terminated.
// The results alias data.
func decodeHeader(data []byte) (name, value []byte, err error) {
	name, rest, err := cString(data, "header name")
	if err != nil {
		return nil, nil, err
	}
	value, rest, err = cString(rest, "header value")
	if err != nil {
		return nil, nil, err
	}
	if len(rest) != 0 {
		return nil, nil, protoErrorf("header packet has %d trailing bytes", len(rest))
	}
	return name, value, nil
}

// decodeMacros parses SMFIC_MACRO: the command the macros belong to, then
// name/value pairs, each NUL-terminated. The pairs are returned raw (they
// are stored as one block and searched on lookup, see macros.go).
func decodeMacros(data []byte) (stage byte, pairs []byte, err error) {
	if len(data) == 0 {
		return 0, nil, protoErrorf("macro packet lacks the command code")
	}
	pairs = data[1:]
	if len(pairs) > 0 && pairs[len(pairs)-1] != 0 {
		return 0, nil, protoErrorf("macro list for %q is not NUL-terminated", data[0])
	}
	return data[0], pairs, nil
}

// commandName names a command code for log lines.
func commandName(cmd byte) string {
	switch gomilter.Code(cmd) {
	case gomilter.CodeOptNeg:
		return "OPTNEG"
	case gomilter.CodeMacro:
		return "MACRO"
	case gomilter.CodeConn:
		return "CONNECT"
	case gomilter.CodeHelo:
		return "HELO"
	case gomilter.CodeMail:
		return "MAIL"
	case gomilter.CodeRcpt:
		return "RCPT"
	case gomilter.CodeData:
		return "DATA"
	case gomilter.CodeHeader:
		return "HEADER"
	case gomilter.CodeEOH:
		return "EOH"
	case gomilter.CodeBody:
		return "BODY"
	case gomilter.CodeEOB:
		return "EOM"
	case gomilter.CodeAbort:
		return "ABORT"
	case gomilter.CodeQuit:
		return "QUIT"
	case gomilter.CodeQuitNewConn:
		return "QUIT_NC"
	case cmdUnknown:
		return "UNKNOWN"
	}
	return "0x" + strconv.FormatUint(uint64(cmd), 16)
}

// packetWriter encodes replies into one reused byte slice; flushing it is a
// single Write, so a batch (end-of-message modifications plus the final
// reply) reaches the MTA in one segment no matter how large it is.
type packetWriter struct {
	buf *[]byte
}

func newPacketWriter() packetWriter { return packetWriter{buf: getBuffer()} }

func (w *packetWriter) release() {
	if w.buf != nil {
		putBuffer(w.buf)
		w.buf = nil
	}
}

func (w *packetWriter) pending() []byte { return *w.buf }
func (w *packetWriter) reset()          { *w.buf = (*w.buf)[:0] }

// begin appends the packet header for a payload of n bytes after the
// command byte.
func (w *packetWriter) begin(cmd byte, n int) {
	b := binary.BigEndian.AppendUint32(*w.buf, uint32(n+1))
	*w.buf = append(b, cmd)
}

func (w *packetWriter) appendUint32(v uint32) {
	*w.buf = binary.BigEndian.AppendUint32(*w.buf, v)
}

func (w *packetWriter) appendCString(s string) {
	*w.buf = append(append(*w.buf, s...), 0)
}

// simple writes a packet without payload (continue, accept, reject, ...).
func (w *packetWriter) simple(code byte) { w.begin(code, 0) }

// optneg writes the negotiation reply.
func (w *packetWriter) optneg(o optneg) {
	w.begin(byte(gomilter.CodeOptNeg), 12)
	w.appendUint32(o.version)
	w.appendUint32(uint32(o.actions))
	w.appendUint32(uint32(o.protocol))
}

// strings writes a packet whose payload is NUL-terminated strings.
func (w *packetWriter) strings(code byte, fields ...string) {
	n := 0
	for _, f := range fields {
		n += len(f) + 1
	}
	w.begin(code, n)
	for _, f := range fields {
		w.appendCString(f)
	}
}

// indexedHeader writes SMFIR_CHGHEADER or SMFIR_INSHEADER.
func (w *packetWriter) indexedHeader(code byte, index uint32, name, value string) {
	w.begin(code, 4+len(name)+1+len(value)+1)
	w.appendUint32(index)
	w.appendCString(name)
	w.appendCString(value)
}

// replyCode writes SMFIR_REPLYCODE: "ddd x.y.z text" NUL-terminated. '%' in
// the text is doubled: Sendmail uses the reply as a format string and
// Postfix undoes the doubling (libmilter's smfi_setreply documents the
// rule).
func (w *packetWriter) replyCode(code int, enhanced, text string) {
	n := 3 + 1 + len(enhanced) + 1
	if text != "" {
		n += 1 + len(text) + strings.Count(text, "%")
	}
	w.begin(byte(gomilter.ActReplyCode), n)
	b := strconv.AppendInt(*w.buf, int64(code), 10)
	b = append(b, ' ')
	b = append(b, enhanced...)
	if text != "" {
		b = append(b, ' ')
		for i := 0; i < len(text); i++ {
			if text[i] == '%' {
				b = append(b, '%')
			}
			b = append(b, text[i])
		}
	}
	*w.buf = append(b, 0)
}
