package mtatest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/wasmilter/wasmilter/internal/modroot"
)

// The MTA snippets admins copy from examples/ are what the harness runs:
// StartSendmail takes its milter definition from SendmailExample and
// StartPostfix its milter settings from PostfixMainCFExample, so an
// example that stops working fails the end-to-end tests instead of rotting.
const (
	SendmailExample      = "examples/sendmail/wasmilter.mc"
	PostfixMainCFExample = "examples/postfix/main.cf"
)

// readExample reads a file of the module by its slash-separated path.
func readExample(rel string) (string, error) {
	root, err := modroot.Find()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return "", fmt.Errorf("reading the example the harness runs: %w", err)
	}
	return string(b), nil
}

// milterDefinition matches an INPUT_MAIL_FILTER line of the .mc example,
// also one commented out with dnl (the alternative the admin picks
// instead): the socket's kind, the S= value, and the rest of the options.
var milterDefinition = regexp.MustCompile("^(?:dnl\\s+)?INPUT_MAIL_FILTER\\(`([^']+)', `S=(inet|local):([^,']+)((?:,[^']*)?)'\\)(?:dnl)?$")

// sendmailMilterLine returns the example's INPUT_MAIL_FILTER line for the
// kind of socket spec names ("inet:..." or "local:..."), uncommented, with
// its S= replaced by spec and nothing else changed.
func sendmailMilterLine(example, spec string) (string, error) {
	kind, _, ok := strings.Cut(spec, ":")
	if !ok || (kind != "inet" && kind != "local") {
		return "", fmt.Errorf("milter %q: want inet:PORT@HOST or local:/PATH", spec)
	}
	sc := bufio.NewScanner(strings.NewReader(example))
	for sc.Scan() {
		m := milterDefinition.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m != nil && m[2] == kind {
			return fmt.Sprintf("INPUT_MAIL_FILTER(`%s', `S=%s%s')dnl", m[1], spec, m[4]), nil
		}
	}
	return "", fmt.Errorf("%s has no INPUT_MAIL_FILTER line with S=%s:", SendmailExample, kind)
}

// postfixExampleSettings parses the example main.cf's "name = value" lines.
// It must set smtpd_milters, whose value StartPostfix replaces with the
// test's socket; the other settings are used as written.
func postfixExampleSettings(mainCF string) (map[string]string, error) {
	settings := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(mainCF))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			return nil, fmt.Errorf("%s:%d: want name = value on one line", PostfixMainCFExample, n)
		}
		settings[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	if _, ok := settings["smtpd_milters"]; !ok {
		return nil, fmt.Errorf("%s sets no smtpd_milters", PostfixMainCFExample)
	}
	return settings, nil
}
