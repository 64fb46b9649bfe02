package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/manualclock"
	"github.com/wasmilter/wasmilter/internal/mtatest"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/server"
	"github.com/wasmilter/wasmilter/stamp"
)

// TestPostfixGreylistByMessageIdentity: the greylist example behind a real
// Postfix. The first attempt gets 451 4.7.1 and is in the ledger; wasmilter
// is restarted; the retry after min_delay comes from another client address
// (a sender's pool) and is delivered, carrying the stamp minted at the
// first attempt, and its record is passed.
func TestPostfixGreylistByMessageIdentity(t *testing.T) {
	mtatest.Require(t, "postfix", "swaks")
	greylist := pluginFile(t, "./examples/greylist")
	dir := t.TempDir()
	sock := filepath.Join(mtatest.ShortTempDir(t), "milter.sock")
	toml := `
[milter]
listen = "unix:` + sock + `"
socket_mode = "0666"
[retry]
store = "bolt:ledger.db"
[[plugins]]
name = "greylist"
path = "` + greylist + `"
[plugins.config]
min_delay = "5m"
[[plugins]]
name = "stamp"
path = "builtin:stamp"
`
	clock := manualclock.New(time.Now().Truncate(time.Second))
	first := startFilterIn(t, toml, dir, server.Options{Clock: clock.Now})
	pf, sink := postfixWith(t, first)
	m := mail(t)
	firstSeen := clock.Now()

	res := mtatest.Send(t, pf.SMTPAddr, m)
	if res.Code != 451 || res.Enhanced != "4.7.1" {
		t.Fatalf("first attempt: %d %s %s, want 451 4.7.1\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}

	// A restart between the attempts: the ledger is on disk.
	first.stop(t)
	clock.Advance(6 * time.Minute)
	second := startFilterIn(t, toml, dir, server.Options{Clock: clock.Now})

	m.Source = "127.0.0.2" // another address of the sender's pool
	if res := mtatest.Send(t, pf.SMTPAddr, m); res.Code != 250 {
		t.Fatalf("retry after min_delay from another address: %d %s %s\n%s", res.Code, res.Enhanced, res.Text, res.Transcript)
	}
	got := sink.Wait(t, 1, 30*time.Second)
	stamps := headerOf(t, got[0].Data).Values(stamp.DefaultHeader)
	if len(stamps) != 1 {
		t.Fatalf("%d stamps on the delivered retry", len(stamps))
	}
	codec, _ := stamp.NewCodec("", nil)
	st, err := codec.Parse(stamps[0])
	if err != nil {
		t.Fatal(err)
	}
	if !st.FirstSeen.Equal(firstSeen) {
		t.Errorf("the retry's stamp says first seen %s; the first attempt was at %s", st.FirstSeen, firstSeen)
	}
	second.stop(t) // bbolt lets one process at a time hold the ledger
	checkPassedRecord(t, filepath.Join(dir, "ledger.db"), st)
}

// checkPassedRecord opens the ledger the (stopped) servers shared.
func checkPassedRecord(t *testing.T, path string, st stamp.Stamp) {
	t.Helper()
	l, err := retry.OpenBolt(path, retry.BoltOptions{})
	if err != nil {
		t.Fatalf("opening the ledger: %v", err)
	}
	defer l.Close()
	rec, err := l.Get(context.Background(), st.ID)
	if err != nil {
		t.Fatalf("the message's record: %v", err)
	}
	if rec.State != retry.Passed || rec.Attempts != 2 || !rec.FirstSeen.Equal(st.FirstSeen) {
		t.Errorf("record %+v: want passed after 2 attempts, first seen %s", rec, st.FirstSeen)
	}
	if rec.History[0].ClientIP == rec.History[len(rec.History)-1].ClientIP {
		t.Errorf("both attempts from %s; the retry should have come from another address", rec.History[0].ClientIP)
	}
}
