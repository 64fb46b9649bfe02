package mtatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmilter/wasmilter/internal/modroot"
)

// EnvE2E names the variable that turns a missing prerequisite from a skip
// into a failure. CI sets it because there a missing tool is a broken
// install, not an optional extra.
const EnvE2E = "WASMILTER_E2E"

// EnvSendmailRoot names the variable that points at the unpacked sendmail
// tree (the result of `dpkg-deb -x` of sendmail-bin, sendmail-base and
// sendmail-cf). Sendmail cannot be installed as a package next to Postfix,
// so the harness runs it straight from that tree.
const EnvSendmailRoot = "WASMILTER_SENDMAIL_ROOT"

// Names Require understands besides plain command names.
const (
	// NeedRoot asks for euid 0: the MTAs drop to their own users, chown
	// their queues and (Sendmail) need new UTS and mount namespaces.
	NeedRoot = "root"
	// NeedSendmail asks for the unpacked sendmail tree (see SendmailRoot).
	NeedSendmail = "sendmail"
)

// hints tells a reader how to get a missing prerequisite.
var hints = map[string]string{
	NeedRoot:     "run the tests as root",
	NeedSendmail: "unpack sendmail-bin, sendmail-base and sendmail-cf with apt-get download + dpkg-deb -x (as .ci/run does) and point " + EnvSendmailRoot + " at it",
	"postfix":    "apt-get install postfix",
	"postconf":   "apt-get install postfix",
	"swaks":      "apt-get install swaks",
	"m4":         "apt-get install m4",
	"unshare":    "apt-get install util-linux",
	"miltertest": "apt-get install miltertest",
}

// Require skips the test, naming what is missing, when any of what is not
// available. what holds command names (looked up in PATH and the sbin
// directories) or NeedRoot / NeedSendmail. With WASMILTER_E2E=1 the test
// fails instead of skipping.
func Require(t testing.TB, what ...string) {
	t.Helper()
	var missing []string
	for _, w := range what {
		if problem := check(w); problem != "" {
			missing = append(missing, problem)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "mtatest: missing prerequisites: " + strings.Join(missing, "; ")
	if os.Getenv(EnvE2E) == "1" {
		t.Fatal(msg + " (" + EnvE2E + "=1 makes this a failure)")
	}
	t.Skip(msg)
}

// check returns "" when w is available, else a description of the gap.
func check(w string) string {
	var problem string
	switch w {
	case NeedRoot:
		if os.Geteuid() != 0 {
			problem = fmt.Sprintf("root privileges (euid is %d)", os.Geteuid())
		}
	case NeedSendmail:
		if err := checkSendmailTree(SendmailRoot()); err != nil {
			problem = err.Error()
		}
	default:
		if _, err := lookCommand(w); err != nil {
			problem = fmt.Sprintf("command %q not found", w)
		}
	}
	if problem != "" && hints[w] != "" {
		problem += " (" + hints[w] + ")"
	}
	return problem
}

// sbinDirs are searched after PATH: a non-login root shell or a CI runner
// often lacks them in PATH, yet that is where postfix and postconf live.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// lookCommand finds a command in PATH or in the sbin directories.
func lookCommand(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// mustCommand is lookCommand for callers that already passed Require.
func mustCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := lookCommand(name)
	if err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	return p
}

// SendmailRoot returns the directory holding the unpacked sendmail tree:
// $WASMILTER_SENDMAIL_ROOT, or .cache/sendmail under the module root.
func SendmailRoot() string {
	if dir := os.Getenv(EnvSendmailRoot); dir != "" {
		return dir
	}
	root, err := modroot.Find()
	if err != nil {
		return filepath.Join(".cache", "sendmail")
	}
	return filepath.Join(root, ".cache", "sendmail")
}
