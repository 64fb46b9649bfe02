package loadgen

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// maxBodyChunk is Postfix's MILTER_CHUNK_SIZE: body packets carry at most
// this many bytes.
const maxBodyChunk = 65535

// newsletter is the default message: a commercial newsletter as it arrives
// at an MX (two Received, a DKIM signature, list headers, multipart body),
// about 3.9 KB with 20 header fields.
//
//go:embed newsletter.eml
var newsletter []byte

// Message is the mail every simulated transaction carries, prepared in the
// form Postfix hands it to a milter.
type Message struct {
	Headers []Header
	// Body is the body with CRLF line ends, as milters receive it.
	Body []byte
	// Size is the message's size on the wire (headers and body, CRLF).
	Size int
}

// Header is one header field. Value is everything after the colon, with
// its leading white space and with folded lines joined by "\n", the way
// Postfix and Sendmail send a multi-line header; a milter that did not
// negotiate SMFIP_HDR_LEADSPC gets it without its first space.
type Header struct {
	Name, Value string
}

// DefaultMessage returns the built-in newsletter.
func DefaultMessage() *Message {
	m, err := ParseMessage(bytes.NewReader(newsletter))
	if err != nil {
		panic("loadgen: built-in message: " + err.Error()) // a broken embed is a build bug
	}
	return m
}

// ParseMessage reads an RFC 5322 message (LF or CRLF line ends).
func ParseMessage(r io.Reader) (*Message, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading message: %w", err)
	}
	raw = toCRLF(raw)
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("parsing message header: %w", err)
	}
	m := &Message{}
	for f := h.Fields(); f.Next(); {
		fieldRaw, err := f.Raw()
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", f.Key(), err)
		}
		m.Headers = append(m.Headers, splitField(fieldRaw))
	}
	if len(m.Headers) == 0 {
		return nil, fmt.Errorf("message has no header fields")
	}
	if m.Body, err = io.ReadAll(br); err != nil {
		return nil, fmt.Errorf("reading message body: %w", err)
	}
	if len(m.Body) > 0 && !bytes.HasSuffix(m.Body, []byte("\r\n")) {
		m.Body = append(m.Body, '\r', '\n') // Postfix ends the last line
	}
	m.Size = len(raw)
	return m, nil
}

// splitField turns "Name: v1\r\n\tv2\r\n" into {Name, " v1\n\tv2"}.
func splitField(raw []byte) Header {
	name, value, _ := strings.Cut(string(raw), ":")
	value = strings.TrimSuffix(value, "\r\n")
	value = strings.ReplaceAll(value, "\r\n", "\n")
	return Header{Name: strings.TrimRight(name, " \t"), Value: value}
}

// toCRLF makes every line end CRLF, whatever it had.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// bodyChunks splits the body as Postfix does, at most maxBodyChunk each.
func (m *Message) bodyChunks() [][]byte {
	var chunks [][]byte
	for b := m.Body; len(b) > 0; {
		n := min(len(b), maxBodyChunk)
		chunks = append(chunks, b[:n])
		b = b[n:]
	}
	return chunks
}

// messageIDIndex is the position of the Message-ID field, or -1.
func (m *Message) messageIDIndex() int {
	for i, h := range m.Headers {
		if strings.EqualFold(h.Name, "Message-ID") {
			return i
		}
	}
	return -1
}
