package mtatest

import (
	"strings"
	"testing"
)

// TestSendmailExampleLines: both lines of the Sendmail example yield a
// definition for a test socket that keeps every option but S=.
func TestSendmailExampleLines(t *testing.T) {
	example, err := readExample(SendmailExample)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"inet:2525@127.0.0.1", "local:/tmp/x/milter.sock"} {
		line, err := sendmailMilterLine(example, spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		want := "INPUT_MAIL_FILTER(`wasmilter', `S=" + spec + ", F=T, T=C:10s;S:30s;R:30s;E:5m')dnl"
		if line != want {
			t.Errorf("%s:\n got %s\nwant %s", spec, line, want)
		}
	}
}

func TestSendmailMilterLineRefuses(t *testing.T) {
	inetOnly := "INPUT_MAIL_FILTER(`w', `S=inet:1@127.0.0.1, F=T')dnl\n"
	if _, err := sendmailMilterLine(inetOnly, "local:/s"); err == nil {
		t.Error("an example without a local line gave one")
	}
	if _, err := sendmailMilterLine(inetOnly, "unix:/s"); err == nil {
		t.Error("a Postfix-notation socket was accepted")
	}
	if line, err := sendmailMilterLine(inetOnly, "inet:2@127.0.0.1"); err != nil || !strings.Contains(line, "S=inet:2@127.0.0.1, F=T'") {
		t.Errorf("got %q, %v", line, err)
	}
}

// TestPostfixExampleInMainCF: the rendered main.cf carries the example's
// milter settings with the test's socket, and a test's explicit choices
// win over the example.
func TestPostfixExampleInMainCF(t *testing.T) {
	p := &Postfix{Dir: t.TempDir()}
	cf, err := p.mainCF(PostfixConfig{Milter: "unix:/tmp/x.sock", RelayTo: "127.0.0.1:25"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"smtpd_milters = unix:/tmp/x.sock\n", "non_smtpd_milters = $smtpd_milters\n",
		"milter_protocol = 6\n", "milter_default_action = tempfail\n"} {
		if !strings.Contains(cf, want) {
			t.Errorf("main.cf lacks %q:\n%s", want, cf)
		}
	}
	cf, err = p.mainCF(PostfixConfig{Milter: "inet:127.0.0.1:1", RelayTo: "127.0.0.1:25", MilterProtocol: 2, DefaultAction: "accept"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cf, "milter_protocol = 2\n") || !strings.Contains(cf, "milter_default_action = accept\n") {
		t.Errorf("the test's protocol and default action lost to the example:\n%s", cf)
	}
}

func TestPostfixExampleSettingsRefuses(t *testing.T) {
	if _, err := postfixExampleSettings("milter_protocol = 6\n"); err == nil {
		t.Error("an example without smtpd_milters was accepted")
	}
	if _, err := postfixExampleSettings("smtpd_milters = a\n  b\n"); err == nil {
		t.Error("a continuation line was accepted")
	}
}

// TestREADMESnippetsAreTheExamples: the MTA lines in README.md are the
// examples' (and so the tested) lines.
func TestREADMESnippetsAreTheExamples(t *testing.T) {
	readme, err := readExample("README.md")
	if err != nil {
		t.Fatal(err)
	}
	mainCF, err := readExample(PostfixMainCFExample)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"smtpd_milters = unix:/run/wasmilter/milter.sock", "non_smtpd_milters = $smtpd_milters",
		"milter_protocol = 6", "milter_default_action = tempfail"} {
		if !strings.Contains(readme, "\n"+line+"\n") || !strings.Contains(mainCF, "\n"+line+"\n") {
			t.Errorf("README.md and %s do not both carry %q", PostfixMainCFExample, line)
		}
	}
	mc, err := readExample(SendmailExample)
	if err != nil {
		t.Fatal(err)
	}
	line, err := sendmailMilterLine(mc, "inet:8897@127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readme, "\n"+strings.TrimSuffix(line, "dnl")+"\n") {
		t.Errorf("README.md lacks the Sendmail example's line:\n%s", line)
	}
}
