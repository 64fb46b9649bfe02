package mtatest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// syslogSink is a unix datagram socket that plays syslogd for one daemon:
// whatever the daemon hands syslog(3) ends up here, one line per message.
type syslogSink struct {
	mu    sync.Mutex
	lines []string
}

// startSyslogSink listens on path until t's cleanup.
func startSyslogSink(t testing.TB, path string) *syslogSink {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("mtatest: syslog socket: %v", err)
	}
	// The daemon's children may run as other users (sendmail delivers as
	// its DefaultUser); let them all log.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	s := &syslogSink{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.read(conn)
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// read stores datagrams until the socket is closed.
func (s *syslogSink) read(conn *net.UnixConn) {
	buf := make([]byte, 64*1024)
	for {
		n, err := conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // a truncated or odd datagram is no reason to stop logging
		}
		s.add(buf[:n])
	}
}

// add stores one message without its "<priority>" prefix.
func (s *syslogSink) add(msg []byte) {
	if len(msg) > 0 && msg[0] == '<' {
		if i := bytes.IndexByte(msg, '>'); i > 0 {
			msg = msg[i+1:]
		}
	}
	line := strings.TrimRight(string(msg), "\x00\r\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

// String returns everything logged so far, one message per line.
func (s *syslogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return ""
	}
	return strings.Join(s.lines, "\n") + "\n"
}
