package loadgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	// writeBuffer approximates Postfix's VSTREAM buffer on a milter socket,
	// which vstream_tweak_tcp grows to the TCP MSS (about 64 KiB on
	// loopback): a message's header batch leaves in one write.
	writeBuffer = 64 << 10
	// maxReplyPacket bounds what is read from the milter: a body
	// replacement chunk is at most 64 KiB; anything far larger is broken.
	maxReplyPacket = 1 << 20
)

// ProtocolError is a milter answer that breaks the protocol: the milter,
// not the network or the load generator, is at fault.
type ProtocolError struct {
	Stage string // the MTA event being answered, e.g. "EOM"
	Msg   string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("protocol error at %s: %s", e.Stage, e.Msg)
}

func protoErr(stage, format string, args ...any) error {
	return &ProtocolError{Stage: stage, Msg: fmt.Sprintf(format, args...)}
}

// wire frames milter packets on one connection. Writes are buffered and
// flushed only when a reply is awaited (or the session ends), as Postfix
// does, so events that need no reply travel with the next one.
type wire struct {
	conn    net.Conn
	w       *bufio.Writer
	r       *bufio.Reader
	timeout time.Duration // per reply and per flush
	head    [5]byte
	payload []byte // reused read buffer
}

func newWire(c net.Conn, timeout time.Duration) *wire {
	return &wire{conn: c, w: bufio.NewWriterSize(c, writeBuffer), r: bufio.NewReaderSize(c, 4096), timeout: timeout}
}

// send queues one packet: its length, its command byte, then the parts.
func (w *wire) send(cmd byte, parts ...[]byte) error {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	if w.w.Available() < n+4 {
		// bufio will write by itself: bound that write too.
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	binary.BigEndian.PutUint32(w.head[:4], uint32(n))
	w.head[4] = cmd
	if _, err := w.w.Write(w.head[:]); err != nil {
		return w.writeErr(err)
	}
	for _, p := range parts {
		if _, err := w.w.Write(p); err != nil {
			return w.writeErr(err)
		}
	}
	return nil
}

func (w *wire) flush() error {
	if w.w.Buffered() == 0 {
		return nil
	}
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	if err := w.w.Flush(); err != nil {
		return w.writeErr(err)
	}
	return nil
}

func (w *wire) writeErr(err error) error {
	return fmt.Errorf("writing to milter: %w", err)
}

// recv flushes what is queued and reads one packet. The payload is valid
// until the next recv.
func (w *wire) recv(stage string) (byte, []byte, error) {
	if err := w.flush(); err != nil {
		return 0, nil, err
	}
	w.conn.SetReadDeadline(time.Now().Add(w.timeout))
	var lenBuf [4]byte
	if _, err := io.ReadFull(w.r, lenBuf[:]); err != nil {
		return 0, nil, readErr(stage, err, w.timeout)
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n == 0 || n > maxReplyPacket {
		return 0, nil, protoErr(stage, "reply packet length %d (want 1 to %d)", n, maxReplyPacket)
	}
	if cap(w.payload) < int(n) {
		w.payload = make([]byte, n)
	}
	buf := w.payload[:n]
	if _, err := io.ReadFull(w.r, buf); err != nil {
		return 0, nil, readErr(stage, err, w.timeout)
	}
	return buf[0], buf[1:], nil
}

func readErr(stage string, err error, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no reply at %s within %s: %w", stage, timeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("milter closed the connection at %s: %w", stage, err)
	}
	return fmt.Errorf("reading reply at %s: %w", stage, err)
}

func (w *wire) close() error { return w.conn.Close() }
