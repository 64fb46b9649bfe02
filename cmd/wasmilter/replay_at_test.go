package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/wasmtest"
	"github.com/wasmilter/wasmilter/stamp"
)

// replayStart is the simulated clock's start in these tests.
const replayStart = "2026-11-20T10:00:00Z"

// travelFixture is what the time-travel tests share: the greylist
// example, built once, and one compilation cache, so each replay compiles
// the plugins warm (a cold compile under -race takes a minute).
type travelFixture struct {
	greylist []byte
	cacheDir string
	msgPath  string
}

func newTravelFixture(t *testing.T) *travelFixture {
	t.Helper()
	msg, _ := filepath.Abs(filepath.Join(origWD, "testdata/plain.eml"))
	return &travelFixture{greylist: wasmtest.BuildGo(t, "./examples/greylist"), cacheDir: t.TempDir(), msgPath: msg}
}

// config writes, in a fresh working directory, a config with the greylist
// example deferring for minDelay after the stamping policy, a delay policy
// that tells senders of example.org at 30m and 4h, and both max_ages at
// one day.
func (fx *travelFixture) config(t *testing.T, minDelay string) string {
	t.Helper()
	dir := inTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "greylist.wasm"), fx.greylist, 0o644); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "travel.toml", fmt.Sprintf(`
[runtime]
compilation_cache = %q

[retry]
max_age = "1d"

[notify]
hostname = "mx.example.net"

[notify.policy.config]
local_domains = ["example.org"]
notify_after = ["30m", "4h"]
max_age = "1d"

[[plugins]]
name = "stamp"
path = "builtin:stamp"

[[plugins]]
name = "greylist"
path = "greylist.wasm"

[plugins.config]
min_delay = %q
`, fx.cacheDir, minDelay))
}

// replayAt runs replay -at and fails the test unless it succeeds.
func replayAt(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := wasmctl(t, append([]string{"replay", "-start", replayStart}, args...)...)
	if code != 0 {
		t.Fatalf("replay %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// stepBlocks splits the report into its steps, by offset as printed.
func stepBlocks(t *testing.T, out string) map[string]string {
	t.Helper()
	blocks := map[string]string{}
	head := regexp.MustCompile(`^(\+\S+) +(\S+)$`)
	cur := ""
	for l := range strings.SplitSeq(out, "\n") {
		if m := head.FindStringSubmatch(l); m != nil {
			cur = m[1]
			continue
		}
		if cur != "" && strings.HasPrefix(l, "  ") {
			blocks[cur] += l + "\n"
		}
	}
	return blocks
}

// wantLines checks each step's block for a line matching each pattern.
func wantLines(t *testing.T, out string, want map[string][]string) {
	t.Helper()
	blocks := stepBlocks(t, out)
	for step, patterns := range want {
		block, ok := blocks[step]
		if !ok {
			t.Errorf("no step %s in the report:\n%s", step, out)
			continue
		}
		for _, p := range patterns {
			if !regexp.MustCompile(`(?m)` + p).MatchString(block) {
				t.Errorf("step %s lacks a line matching %q:\n%s", step, p, block)
			}
		}
	}
}

var stampReport = regexp.MustCompile(`(?m)^  stamp +(?:none \(refused before stamping\); record )?id=([a-z2-7]{26}), first seen (\S+)`)

// checkOneStamp asserts every step reports the same stamp: the message's
// identity and the first attempt's time.
func checkOneStamp(t *testing.T, out string, steps int) {
	t.Helper()
	want := stamp.Derive(stamp.Facts{Sender: "alice@example.org", Recipients: []string{"bob@example.net", "carol@example.net"},
		Headers: []stamp.Field{{Name: "Message-ID", Value: "<quarterly-1@mail.example.org>"}}}).String()
	got := stampReport.FindAllStringSubmatch(out, -1)
	if len(got) != steps {
		t.Fatalf("%d stamp lines, want one per step (%d):\n%s", len(got), steps, out)
	}
	for i, m := range got {
		if m[1] != want || m[2] != replayStart {
			t.Errorf("step %d: stamp id=%s first seen %s, want id=%s first seen %s", i+1, m[1], m[2], want, replayStart)
		}
	}
	if strings.Contains(out, "CHANGED") {
		t.Errorf("the report says a stamp changed:\n%s", out)
	}
}

func TestReplayAt(t *testing.T) {
	fx := newTravelFixture(t)
	t.Run("greylist tells then passes", fx.tellsThenPasses)
	t.Run("gives up after max_age", fx.givesUp)
	t.Run("catches up on notices", fx.catchesUp)
	t.Run("-v prints the notice", fx.verbose)
}

func (fx *travelFixture) tellsThenPasses(t *testing.T) {
	cfg, msg := fx.config(t, "5m"), fx.msgPath
	out := replayAt(t, "-config", cfg, "-at", "+0", "-at", "1m", "-at", "+3m", "-at", "+40m", "-at", "+41m", msg)
	wantLines(t, out, map[string][]string{
		"+0":   {`^  verdict +tempfail 451 4\.7\.1 Greylisted`, `^  ledger +deferred, 1 attempt, age 0s$`},
		"+1m":  {`^  verdict +tempfail 451 4\.7\.1 `, `^  ledger +deferred, 2 attempts, age 1m$`},
		"+3m":  {`^  verdict +tempfail 451 4\.7\.1 `, `^  ledger +deferred, 3 attempts, age 3m$`},
		"+40m": {`^  notice +delayed 4\.7\.1 to <alice@example\.org>: "Delayed Mail \(still being retried\)"$`, `^  verdict +continue$`, `^  ledger +passed, 4 attempts, age 40m, 1 notice sent$`},
		"+41m": {`^  verdict +continue$`},
	})
	if n := strings.Count(out, "  notice "); n != 1 {
		t.Errorf("%d notices, want only the one at +40m:\n%s", n, out)
	}
	if !strings.Contains(out, "2026-11-20T10:40:00Z") {
		t.Errorf("the +40m step does not show its simulated time:\n%s", out)
	}
	checkOneStamp(t, out, 5)
	if !strings.Contains(out, "\nresult: passed at +40m, 40m after it was first seen; 5 attempts, 1 notice sent\n") {
		t.Errorf("result line missing or wrong:\n%s", out)
	}
}

func (fx *travelFixture) givesUp(t *testing.T) {
	cfg, msg := fx.config(t, "48h"), fx.msgPath
	out := replayAt(t, "-config", cfg, "-at", "+0", "-at", "+1h", "-at", "+5h", "-at", "+23h", "-at", "+1d", "-at", "+1d1h", msg)
	wantLines(t, out, map[string][]string{
		"+1h":   {`^  notice +delayed 4\.7\.1 to <alice@example\.org>`, `^  verdict +tempfail 451 4\.7\.1 `},
		"+5h":   {`^  notice +delayed 4\.7\.1 to <alice@example\.org>`, `^  ledger +deferred, 3 attempts, age 5h, 2 notices sent$`},
		"+23h":  {`^  verdict +tempfail 451 4\.7\.1 `},
		"+1d":   {`^  notice +failed 5\.4\.7 to <alice@example\.org>: "Undelivered Mail Returned to Sender"$`, `^  verdict +reject 550 5\.4\.7 Message expired`, `^  ledger +expired, 4 attempts`},
		"+1d1h": {`^  verdict +reject 550 5\.4\.7 `},
	})
	blocks := stepBlocks(t, out)
	for _, quiet := range []string{"+0", "+23h", "+1d1h"} {
		if strings.Contains(blocks[quiet], "  notice ") {
			t.Errorf("step %s sent a notice, none was due:\n%s", quiet, blocks[quiet])
		}
	}
	checkOneStamp(t, out, 6)
	if !strings.Contains(out, "\nresult: expired at +1d, 1d after it was first seen; 4 attempts, 3 notices sent\n") {
		t.Errorf("result line missing or wrong:\n%s", out)
	}
}

// Jumping past two notice steps at once sends both before the attempt: a
// running sweeper would have sent them by then.
func (fx *travelFixture) catchesUp(t *testing.T) {
	cfg, msg := fx.config(t, "48h"), fx.msgPath
	out := replayAt(t, "-config", cfg, "-at", "+0", "-at", "+5h", msg)
	if n := strings.Count(stepBlocks(t, out)["+5h"], "  notice   delayed 4.7.1"); n != 2 {
		t.Errorf("%d delayed notices at +5h, want the 30m and the 4h one:\n%s", n, out)
	}
}

func (fx *travelFixture) verbose(t *testing.T) {
	cfg, msg := fx.config(t, "5m"), fx.msgPath
	out := replayAt(t, "-config", cfg, "-v", "-at", "+0", "-at", "+40m", msg)
	block := stepBlocks(t, out)["+40m"]
	for _, want := range []string{"| To: <alice@example.org>", "| Content-Type: multipart/report;", "report-type=delivery-status",
		"| Content-Type: message/delivery-status", "| Final-Recipient: rfc822; carol@example.net", "| Action: delayed",
		"| Status: 4.7.1", "| Date: Fri, 20 Nov 2026 10:40:00 +0000", "| + X-Wasmilter-Stamp: v=1; id="} {
		if !strings.Contains(block, want) {
			t.Errorf("-v step +40m lacks %q:\n%s", want, block)
		}
	}
	if strings.Contains(block, "\r") {
		t.Error("-v printed the notice with CRLF line ends")
	}
}

func TestReplayAtRefusesBadOffsets(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-at", "+5x"}, `-at "+5x": not an offset from the start (use e.g. +0, +10m, +5h, +2d, +1d12h)`},
		{[]string{"-at", "-5m"}, `-at "-5m": not an offset`},
		{[]string{"-at", "+-5m"}, `-at "+-5m": not an offset`},
		{[]string{"-at", ""}, `-at "": not an offset`},
		{[]string{"-at", "+0", "-at", "+40m", "-at", "+6m"}, "-at +6m comes after -at +40m: the attempts are played in order, so the offsets must not decrease"},
		{[]string{"-start", "yesterday", "-at", "+0"}, `-start "yesterday": not an RFC 3339 time`},
		{[]string{"-start", replayStart}, "-start sets the simulated clock of -at: give at least one -at OFFSET"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errOut := wasmctl(t, append(append([]string{"replay"}, c.args...), "no-such.eml")...)
			if code != 2 || !strings.Contains(errOut, "wasmilter replay: "+c.want) {
				t.Fatalf("exit %d, want 2 and %q on stderr\nstdout: %s\nstderr: %s", code, c.want, out, errOut)
			}
		})
	}
}

func TestParseOffset(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"+0": 0, "0": 0, "+10m": 10 * time.Minute, "5h": 5 * time.Hour, "+2d": 48 * time.Hour,
		"+1d12h": 36 * time.Hour, "+90s": 90 * time.Second,
	} {
		if got, err := parseOffset(in); err != nil || got != want {
			t.Errorf("parseOffset(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "+0", 36 * time.Hour: "+1d12h", 40 * time.Minute: "+40m",
		90 * time.Second: "+1m30s", 24 * time.Hour: "+1d"} {
		if got := formatOffset(d); got != want {
			t.Errorf("formatOffset(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestStatusReportPerRecipient(t *testing.T) {
	body := "Reporting-MTA: dns; mx.example.net\r\n\r\n" +
		"Final-Recipient: rfc822; bob@example.net\r\nAction: delayed\r\nStatus: 4.7.1\r\n\r\n" +
		"Final-Recipient: rfc822; carol@example.net\r\nAction: failed\r\nStatus: 5.4.7\r\n\r\n"
	got, err := statusReport(strings.NewReader(body))
	if want := "delayed 4.7.1 bob@example.net, failed 5.4.7 carol@example.net"; err != nil || got != want {
		t.Errorf("statusReport = %q, %v; want %q", got, err, want)
	}
	same := strings.ReplaceAll(body, "Action: failed\r\nStatus: 5.4.7", "Action: delayed\r\nStatus: 4.7.1")
	if got, err := statusReport(strings.NewReader(same)); err != nil || got != "delayed 4.7.1" {
		t.Errorf("statusReport with one action for all = %q, %v; want %q", got, err, "delayed 4.7.1")
	}
}
