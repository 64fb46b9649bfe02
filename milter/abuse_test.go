package milter

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// abuseReadTimeout is the server's read timeout in TestAbusiveClients: every
// stalled connection must be gone this long after its last byte (plus
// slack for a loaded machine).
const abuseReadTimeout = 300 * time.Millisecond

// abuser is one kind of misbehaving MTA: it writes what it writes and then
// keeps its connection open without a word, so only the server can end it.
type abuser struct {
	name  string
	bytes func(rng *rand.Rand) []byte
	// eof: the server closes at once (a protocol error), not at the timeout.
	eof bool
}

func abusers() []abuser {
	optneg := packet('O', optnegPayload(6, fullActions, fullProtocol))
	join := func(ps ...[]byte) []byte { return bytes.Join(ps, nil) }
	return []abuser{
		{name: "silent", bytes: func(*rand.Rand) []byte { return nil }},
		{name: "half a length", bytes: func(*rand.Rand) []byte { return optneg[:2] }},
		{name: "half a packet", bytes: func(*rand.Rand) []byte { return optneg[:len(optneg)/2] }},
		{name: "negotiated then silent", bytes: func(*rand.Rand) []byte { return optneg }},
		{name: "stalled mid-message", bytes: func(*rand.Rand) []byte {
			return join(optneg, packet('C', connectPayload("h", '4', 25, "192.0.2.1")), packet('M', cstr("<a@x>")),
				packet('R', cstr("<b@y>")), packet('L', cstr("Subject", "x")))
		}},
		{name: "stalled in a body packet", bytes: func(*rand.Rand) []byte {
			return join(optneg, packet('M', cstr("<a@x>")), packet('B', strings.Repeat("x", 100))[:60])
		}},
		{name: "random bytes", bytes: func(rng *rand.Rand) []byte {
			b := make([]byte, 1+rng.Intn(512))
			rng.Read(b)
			return b
		}},
		{name: "random packets", bytes: func(rng *rand.Rand) []byte {
			b := append([]byte(nil), optneg...)
			for i := rng.Intn(8); i > 0; i-- {
				p := make([]byte, rng.Intn(40))
				rng.Read(p)
				b = append(b, packet("CHMRLNBEADKQTU"[rng.Intn(14)], string(p))...)
			}
			return b
		}},
		{name: "oversized length", eof: true, bytes: func(*rand.Rand) []byte { return join(optneg, []byte("\x7f\xff\xff\xffM")) }},
	}
}

// TestAbusiveClients: random bytes, half-open connections and stalls do not
// crash the server, and every connection is released (its goroutine and its
// file descriptor) within the read timeout, while a well-behaved MTA is
// served throughout.
func TestAbusiveClients(t *testing.T) {
	const perKind = 8
	b := newTestBackend(allNeeds())
	ts := startServer(t, b, func(s *Server) {
		s.ReadTimeout = abuseReadTimeout
		// Idle connection goroutines end quickly, so that the count of
		// goroutines after the abuse shows leaks, not the idle pool.
		s.workerIdle = 20 * time.Millisecond
	})

	// Warm up (pooled readers, the accept loop) and take the baseline.
	warm := ts.client(t, fullActions, fullProtocol)
	warm.Close()
	b.log.waitClosed(t, 1)
	baseG, baseFD := settle(t, 0, 0, "baseline")

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	kinds := abusers()
	var wg sync.WaitGroup
	errs := make(chan error, perKind*len(kinds))
	for i := 0; i < perKind; i++ {
		for k, a := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewSource(seed + int64(i*len(kinds)+k)))
				if err := abuse(ts.addr, a, a.bytes(rng)); err != nil {
					errs <- fmt.Errorf("%s #%d: %w", a.name, i, err)
				}
			}()
		}
	}
	// Meanwhile, a real MTA is served.
	s := ts.client(t, fullActions, fullProtocol)
	if act, err := s.Mail("ok@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("a good MTA during the abuse: %+v %v", act, err)
	}
	s.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Every session the abusers got as far as creating was closed, and
	// goroutines and descriptors are back where they were.
	b.mu.Lock()
	sessions := b.sessions
	b.mu.Unlock()
	waitCond(t, "every session closed", func() bool { return b.log.closeCount() == sessions })
	settle(t, baseG, baseFD, "after the abuse")
	if strings.Contains(ts.logs.String(), "panicked") {
		t.Errorf("the server panicked:\n%s", ts.logs.String())
	}
	s = ts.client(t, fullActions, fullProtocol)
	if act, err := s.Mail("ok@example.net", nil); err != nil || act.Code != gomilter.ActContinue {
		t.Fatalf("a good MTA after the abuse: %+v %v", act, err)
	}
	s.Close()
}

// abuse connects, writes b, and waits without writing more until the
// server closes the connection. It fails when the server holds on longer
// than its read timeout (plus slack for a loaded machine) after the last
// byte.
func abuse(addr string, a abuser, b []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(b) > 0 {
		if _, err := c.Write(b); err != nil {
			return nil // the server already hung up on an early byte: fine
		}
	}
	sent := time.Now()
	// Replies are drained: the server must not depend on the MTA reading.
	c.SetReadDeadline(sent.Add(abuseReadTimeout + 3*time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		return fmt.Errorf("connection not closed by the server: %w", err)
	}
	if a.eof && time.Since(sent) > 5*time.Second {
		return fmt.Errorf("a protocol error took %v to close the connection", time.Since(sent))
	}
	return nil
}

// isReset: the server closing while unread bytes remain resets the
// connection, which is as closed as a FIN.
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// settle waits until the goroutine and file-descriptor counts are at most
// the baseline (zero: take the baseline once they are stable) and returns
// them.
func settle(t *testing.T, baseG, baseFD int, what string) (int, int) {
	t.Helper()
	var g, fd, lastG, lastFD int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if baseG == 0 && g == lastG && fd == lastFD {
			return g, fd
		}
		if baseG > 0 && g <= baseG && fd <= baseFD {
			return g, fd
		}
		lastG, lastFD = g, fd
	}
	if baseG == 0 {
		t.Fatalf("%s: goroutines and descriptors never settled (%d, %d)", what, g, fd)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%s: %d goroutines and %d open descriptors, baseline %d and %d\n%s",
		what, g, fd, baseG, baseFD, buf[:runtime.Stack(buf, true)])
	return 0, 0
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
