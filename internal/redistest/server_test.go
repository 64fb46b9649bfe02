package redistest

import (
	"os"
	"testing"
)

// TestKillRestartKeepsAcknowledgedWrites: a write the server acknowledged
// survives SIGKILL (appendfsync always) and is there after Restart, on
// the same address.
func TestKillRestartKeepsAcknowledgedWrites(t *testing.T) {
	s := Start(t)
	if got, err := s.Do("SET", "k", "v\r\n1"); err != nil || got != "OK" {
		t.Fatalf("SET: %q, %v", got, err)
	}
	addr := s.Addr()
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if s.Addr() != addr {
		t.Errorf("restarted on %s, was %s", s.Addr(), addr)
	}
	if got, err := s.Do("GET", "k"); err != nil || got != "v\r\n1" {
		t.Errorf("GET after kill and restart: %q, %v; want the acknowledged value", got, err)
	}
	if _, err := s.Do("NOSUCHCOMMAND"); err == nil {
		t.Error("an error reply was not an error")
	}
}

// TestPauseStopsAnswers: a paused server accepts connections but answers
// nothing until resumed.
func TestPauseStopsAnswers(t *testing.T) {
	s := Start(t)
	s.Pause()
	if got, err := s.Do("PING"); err == nil {
		t.Fatalf("a paused server answered %q", got)
	}
	s.Resume()
	if got, err := s.Do("PING"); err != nil || got != "PONG" {
		t.Errorf("PING after Resume: %q, %v", got, err)
	}
}

// TestServersAreSeparate: two servers of one test do not share data.
func TestServersAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() || a.Dir() == b.Dir() {
		t.Fatalf("both servers on %s in %s", a.Addr(), a.Dir())
	}
	if _, err := a.Do("SET", "k", "a"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Do("GET", "k"); err == nil {
		t.Errorf("b sees a's key: %q", got)
	}
	if _, err := os.Stat(a.Dir()); err != nil {
		t.Error(err)
	}
}
