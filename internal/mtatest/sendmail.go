package mtatest

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Paths inside the unpacked sendmail tree.
var (
	sendmailBinary = filepath.Join("usr", "libexec", "sendmail", "sendmail")
	sendmailCFDir  = filepath.Join("usr", "share", "sendmail", "cf")
	sendmailHelp   = filepath.Join("etc", "mail", "helpfile")
)

// sendmailHostname is the name Sendmail gets in its own UTS namespace; the
// namespace's private /etc/hosts makes it resolvable.
const sendmailHostname = "mta.wasmilter.test"

// SendmailConfig describes one Sendmail instance.
type SendmailConfig struct {
	// Milter is the Sendmail notation of the milter socket
	// ("inet:N@127.0.0.1", "local:/path"); "" means none.
	Milter string
	// RelayTo is the host:port (an IP literal) everything accepted is
	// relayed to, usually a Sink's Addr. Required.
	RelayTo string
}

// Sendmail is a running Sendmail daemon with its own directory.
type Sendmail struct {
	Dir      string // configuration, queue and pid file live below Dir
	SMTPAddr string // 127.0.0.1:port of its daemon

	syslog *syslogSink
	output string // file receiving the daemon's stdout and stderr
}

// StartSendmail builds a sendmail.cf for cfg with m4 from the unpacked
// sendmail tree and runs the daemon in its own UTS and mount namespaces,
// where it gets a resolvable hostname, a private /etc/hosts and
// /etc/resolv.conf (so no DNS query leaves loopback) and a /dev/log that
// leads to this process. It is stopped in t.Cleanup.
func StartSendmail(t testing.TB, cfg SendmailConfig) *Sendmail {
	t.Helper()
	Require(t, NeedRoot, NeedSendmail, "m4", "unshare", "mount", "mknod")
	relayHost, relayPort, err := net.SplitHostPort(cfg.RelayTo)
	if err != nil || net.ParseIP(relayHost) == nil {
		t.Fatalf("mtatest: SendmailConfig.RelayTo %q: want ip:port", cfg.RelayTo)
	}
	if strings.ContainsAny(cfg.Milter, "'`\n") {
		t.Fatalf("mtatest: SendmailConfig.Milter %q: quotes and line breaks would break the .mc", cfg.Milter)
	}

	dir := ShortTempDir(t)
	port := freeLoopbackPort(t)
	s := &Sendmail{
		Dir:      dir,
		SMTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		output:   filepath.Join(dir, "daemon.out"),
	}
	params := sendmailParams{
		Root: SendmailRoot(), Dir: dir, Port: port,
		RelayHost: relayHost, RelayPort: relayPort,
	}
	if cfg.Milter != "" {
		line, err := exampleSendmailMilter(cfg.Milter)
		if err != nil {
			t.Fatalf("mtatest: %v", err)
		}
		params.MilterLine = line
	}
	if err := writeSendmailFiles(params); err != nil {
		t.Fatalf("mtatest: sendmail files: %v", err)
	}
	if err := buildSendmailCF(params); err != nil {
		t.Fatalf("mtatest: sendmail.cf: %v", err)
	}
	s.syslog = startSyslogSink(t, filepath.Join(dir, "log.sock"))

	started := time.Now()
	s.start(t, params)
	t.Logf("mtatest: sendmail %s listening on %s (started in %v)", dir, s.SMTPAddr, time.Since(started).Round(time.Millisecond))
	return s
}

// Log returns what the daemon has logged through syslog so far, plus
// anything it wrote to stdout or stderr.
func (s *Sendmail) Log() string {
	log := s.syslog.String()
	if out, err := os.ReadFile(s.output); err == nil && len(out) > 0 {
		log += "--- stdout/stderr ---\n" + string(out)
	}
	return log
}

// start runs the namespace script and waits until the daemon listens.
func (s *Sendmail) start(t testing.TB, p sendmailParams) {
	t.Helper()
	out, err := os.Create(s.output)
	if err != nil {
		t.Fatalf("mtatest: %v", err)
	}
	defer out.Close()
	// unshare without --fork execs the script, which execs sendmail -bD:
	// the process started here is the daemon itself.
	cmd := exec.Command(mustCommand(t, "unshare"), "--uts", "--mount", "--propagation", "private",
		"/bin/sh", filepath.Join(p.Dir, "namespace.sh"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = sbinPathEnv()
	if err := cmd.Start(); err != nil {
		t.Fatalf("mtatest: starting sendmail: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t, cmd.Process.Pid, exited) })

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for !listening(p.Port) {
		select {
		case err := <-exited:
			exited <- err // let stop see it too
			t.Fatalf("mtatest: sendmail exited during start: %v (its log follows)", err)
		case <-ctx.Done():
			t.Fatalf("mtatest: sendmail not listening on %s after 15s (its log follows)", s.SMTPAddr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop terminates the daemon and everything else in its mount namespace
// (per-connection children, delivery agents), then reports the log if the
// test failed.
func (s *Sendmail) stop(t testing.TB, pid int, exited chan error) {
	t.Helper()
	started := time.Now()
	members := namespaceMembers(pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		t.Logf("mtatest: sendmail: SIGTERM: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Logf("mtatest: sendmail %d ignored SIGTERM for 5s; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
	if left := waitGone(members, 2*time.Second); len(left) > 0 {
		t.Logf("mtatest: sendmail %s: killing leftover processes %v", s.Dir, left)
		if err := killAll(left); err != nil {
			t.Errorf("mtatest: %v", err)
		}
	}
	t.Logf("mtatest: sendmail %s stopped in %v", s.Dir, time.Since(started).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("mtatest: sendmail log of %s:\n%s", s.Dir, s.Log())
	}
}

// namespaceMembers lists the processes that share pid's mount namespace,
// pid excluded. A sendmail daemon's children stay in it, and nothing else
// does, since the namespace was made for this daemon alone.
func namespaceMembers(pid int) []int {
	self, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return nil
	}
	host, _ := os.Readlink("/proc/self/ns/mnt")
	if self == host {
		return nil // still in the host namespace: matching would catch everything
	}
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		other, err := strconv.Atoi(filepath.Base(d))
		if err != nil || other == pid {
			continue
		}
		if ns, err := os.Readlink(filepath.Join(d, "ns", "mnt")); err == nil && ns == self {
			pids = append(pids, other)
		}
	}
	return pids
}

// sendmailParams fills the templates below.
type sendmailParams struct {
	Root      string // unpacked sendmail tree
	Dir       string // this instance's directory
	Port      int
	RelayHost string
	RelayPort string
	// MilterLine is the INPUT_MAIL_FILTER line of SendmailExample for
	// the test's socket; "" means no milter.
	MilterLine string
	Hostname   string
}

// exampleSendmailMilter is the milter definition StartSendmail runs: the
// admins' line from SendmailExample, with spec as its socket.
func exampleSendmailMilter(spec string) (string, error) {
	example, err := readExample(SendmailExample)
	if err != nil {
		return "", err
	}
	return sendmailMilterLine(example, spec)
}

// The .mc and the namespace script are templates over sendmailParams; they
// live in files because m4 quoting needs backquotes.
var (
	//go:embed templates/sendmail.mc.tmpl
	sendmailMCText string
	//go:embed templates/namespace.sh.tmpl
	namespaceScriptText string

	sendmailMC      = template.Must(template.New("mc").Parse(sendmailMCText))
	namespaceScript = template.Must(template.New("ns").Parse(namespaceScriptText))
)

// writeSendmailFiles creates the instance's directories and the files the
// .cf and the namespace script refer to.
func writeSendmailFiles(p sendmailParams) error {
	// Sendmail refuses a queue directory others can write to.
	if err := os.Mkdir(filepath.Join(p.Dir, "mqueue"), 0o700); err != nil {
		return err
	}
	files := map[string]string{
		"hosts":            "127.0.0.1\t" + sendmailHostname + " mta localhost\n::1\tlocalhost\n",
		"resolv.conf":      "# no resolver: any query fails at once on loopback\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
		"service.switch":   "hosts\tfiles\naliases\tfiles\npasswd\tfiles\n",
		"aliases":          "",
		"local-host-names": "",
		"statistics":       "",
		"sendmail.mc":      render(sendmailMC, p),
		"namespace.sh":     render(namespaceScript, p),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(p.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// buildSendmailCF runs m4 over sendmail.mc with the tree's cf macros.
func buildSendmailCF(p sendmailParams) error {
	m4, err := lookCommand("m4")
	if err != nil {
		return err
	}
	cfDir := filepath.Join(p.Root, sendmailCFDir)
	cmd := exec.Command(m4, "-D_CF_DIR_="+cfDir+"/", filepath.Join(cfDir, "m4", "cf.m4"), filepath.Join(p.Dir, "sendmail.mc"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cf, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("m4: %v\n%s", err, stderr.String())
	}
	return os.WriteFile(filepath.Join(p.Dir, "sendmail.cf"), cf, 0o644)
}

// render executes a template that cannot fail on sendmailParams.
func render(tmpl *template.Template, p sendmailParams) string {
	p.Hostname = sendmailHostname
	var b strings.Builder
	if err := tmpl.Execute(&b, p); err != nil {
		panic(err) // a bug in the template, not an environment problem
	}
	return b.String()
}

// checkSendmailTree reports what is missing from an unpacked sendmail tree.
func checkSendmailTree(root string) error {
	for _, rel := range []string{sendmailBinary, filepath.Join(sendmailCFDir, "m4", "cf.m4"), sendmailHelp} {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			return fmt.Errorf("sendmail tree %s lacks %s", root, rel)
		}
	}
	return nil
}
