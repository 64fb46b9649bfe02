package mtatest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostfixConfig describes one Postfix instance.
type PostfixConfig struct {
	// Milter is the Postfix notation for smtpd_milters and
	// non_smtpd_milters ("inet:127.0.0.1:N", "unix:/path"); "" means none.
	// smtpd runs as the postfix user: a unix socket must be connectable
	// by it (e.g. mode 0666 in a ShortTempDir).
	Milter string
	// MilterProtocol is milter_protocol; 0 means the example's
	// (PostfixMainCFExample: 6).
	MilterProtocol int
	// DefaultAction is milter_default_action; "" means the example's
	// ("tempfail").
	DefaultAction string
	// CommandTimeout sets milter_connect_timeout, milter_command_timeout
	// and milter_content_timeout; 0 means 30s.
	CommandTimeout time.Duration
	// RelayTo is the host:port everything accepted is relayed to (usually
	// a Sink's Addr). Required.
	RelayTo string
	// Extra holds more main.cf settings; they override the harness's.
	Extra map[string]string
	// NoticeListener adds a second smtpd that runs no milters
	// (Postfix.NoticeAddr), the place wasmilter's notices are submitted
	// to so that they do not meet its own policies; its master.cf line is
	// NoticeListenerLine. NoticeListenerOptions are more "-o name=value"
	// settings for it (e.g. a sleep restriction that stalls a send).
	NoticeListener        bool
	NoticeListenerOptions map[string]string
}

// NoticeListenerLine is the master.cf line of a listener on addr for
// wasmilter's own notices: an smtpd that runs no milters. The same line
// is in examples/postfix/master.cf for admins.
func NoticeListenerLine(addr string) string {
	return addr + " inet n - n - - smtpd -o smtpd_milters= -o non_smtpd_milters= -o receive_override_options=no_milters"
}

// Postfix is a running Postfix instance with its own directories.
type Postfix struct {
	Dir      string // everything of this instance lives below Dir
	SMTPAddr string // 127.0.0.1:port of its smtpd
	// NoticeAddr is 127.0.0.1:port of the listener without milters, when
	// PostfixConfig.NoticeListener asked for one.
	NoticeAddr string

	configDir string
	maillog   string
	postfix   string // path of the postfix command
	postconf  string // path of the postconf command
}

// StartPostfix writes a configuration for cfg under a new temp dir, starts
// Postfix with it and stops it again in t.Cleanup.
func StartPostfix(t testing.TB, cfg PostfixConfig) *Postfix {
	t.Helper()
	Require(t, NeedRoot, "postfix", "postconf")
	if _, _, err := net.SplitHostPort(cfg.RelayTo); err != nil {
		t.Fatalf("mtatest: PostfixConfig.RelayTo %q: want host:port: %v", cfg.RelayTo, err)
	}

	dir := ShortTempDir(t)
	p := &Postfix{
		Dir:       dir,
		SMTPAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t))),
		configDir: filepath.Join(dir, "etc"),
		maillog:   filepath.Join(dir, "maillog"),
		postfix:   mustCommand(t, "postfix"),
		postconf:  mustCommand(t, "postconf"),
	}
	if cfg.NoticeListener {
		p.NoticeAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	}
	if err := p.writeConfig(cfg); err != nil {
		t.Fatalf("mtatest: postfix config: %v", err)
	}

	// Register the stop before starting: a start that fails half-way may
	// still leave a master behind.
	t.Cleanup(func() { p.stop(t) })
	started := time.Now()
	if out, err := p.run("start"); err != nil {
		t.Fatalf("mtatest: postfix start: %v\n%s(its maillog follows)", err, out)
	}
	t.Logf("mtatest: postfix %s listening on %s (started in %v)", dir, p.SMTPAddr, time.Since(started).Round(time.Millisecond))
	return p
}

// Log returns what this instance has logged so far (its maillog_file).
func (p *Postfix) Log() string {
	b, err := os.ReadFile(p.maillog)
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	return string(b)
}

// SetMilter switches smtpd_milters and non_smtpd_milters to spec ("" for
// none), reloads Postfix and returns once every smtpd that could still hold
// the old setting has gone, so the next connection uses spec.
func (p *Postfix) SetMilter(t testing.TB, spec string) {
	t.Helper()
	if strings.ContainsAny(spec, "\r\n") {
		t.Fatalf("mtatest: milter spec %q contains a line break", spec)
	}
	out, err := exec.Command(p.postconf, "-c", p.configDir, "-e",
		"smtpd_milters="+spec, "non_smtpd_milters="+spec).CombinedOutput()
	if err != nil {
		t.Fatalf("mtatest: postconf: %v\n%s", err, out)
	}
	if err := backdate(filepath.Join(p.configDir, "main.cf")); err != nil {
		t.Fatalf("mtatest: %v", err)
	}

	// `postfix reload` only sends the master a SIGHUP. The master logs
	// once it has re-read main.cf; and it lets running daemons finish with
	// the old configuration, so the smtpd processes that exist now must
	// exit before every new connection is sure to see spec.
	started := time.Now()
	reloadsBefore := strings.Count(p.Log(), reloadLogMark)
	before := p.daemons("smtpd")
	if out, err := p.run("reload"); err != nil {
		t.Fatalf("mtatest: postfix reload: %v\n%s", err, out)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Count(p.Log(), reloadLogMark) > reloadsBefore }) {
		t.Fatalf("mtatest: postfix reload: the master did not log a reload within 5s\n%s", p.Log())
	}
	if left := waitGone(before, 5*time.Second); len(left) > 0 {
		t.Fatalf("mtatest: postfix reload: smtpd %v still running after 5s\n%s", left, p.Log())
	}
	t.Logf("mtatest: postfix %s: milter %q in effect after %v", p.Dir, spec, time.Since(started).Round(time.Millisecond))
}

// reloadLogMark is what the master logs after re-reading its configuration.
const reloadLogMark = "reload -- version"

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// run runs `postfix -c DIR <command>`.
func (p *Postfix) run(command string) ([]byte, error) {
	cmd := exec.Command(p.postfix, "-c", p.configDir, command)
	cmd.Env = sbinPathEnv()
	return cmd.CombinedOutput()
}

// sbinPathEnv is the environment for MTA commands: postfix-script calls
// postconf, postlog and friends by name, which a stripped PATH lacks.
func sbinPathEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
}

// daemons lists the PIDs of this instance's processes named name.
func (p *Postfix) daemons(name string) []int {
	var pids []int
	for _, pid := range processesWithEnv("MAIL_CONFIG=" + p.configDir) {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stop stops the instance and kills whatever of it survives the stop.
// It uses `postfix abort` (SIGTERM to the master, which takes its children
// down) and waits itself in short steps: `postfix stop` does the same but
// polls in whole seconds, which would add a second to every test.
func (p *Postfix) stop(t testing.TB) {
	t.Helper()
	started := time.Now()
	if _, err := os.Stat(filepath.Join(p.Dir, "queue", "pid", "master.pid")); err == nil {
		if out, err := p.run("abort"); err != nil {
			t.Logf("mtatest: postfix abort: %v\n%s", err, out)
		}
	}
	p.killStrays(t)
	t.Logf("mtatest: postfix %s stopped in %v", p.Dir, time.Since(started).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("mtatest: postfix maillog of %s:\n%s", p.Dir, p.Log())
	}
}

// killStrays waits briefly for the instance's processes to exit after a
// stop and SIGKILLs the rest, so no test leaves a Postfix behind.
func (p *Postfix) killStrays(t testing.TB) {
	t.Helper()
	left := waitGone(processesWithEnv("MAIL_CONFIG="+p.configDir), 3*time.Second)
	if len(left) == 0 {
		return
	}
	t.Logf("mtatest: postfix %s: killing leftover processes %v", p.Dir, left)
	if err := killAll(left); err != nil {
		t.Errorf("mtatest: %v", err)
	}
}

// writeConfig creates the instance's directories, main.cf and master.cf.
func (p *Postfix) writeConfig(cfg PostfixConfig) error {
	for _, d := range []string{p.configDir, filepath.Join(p.Dir, "queue"), filepath.Join(p.Dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// postfix-script insists that the data directory belongs to the mail
	// owner; create-missing does not fix an existing directory's owner.
	if err := chownToUser(filepath.Join(p.Dir, "data"), "postfix"); err != nil {
		return err
	}
	mainCF, err := p.mainCF(cfg)
	if err != nil {
		return err
	}
	masterCF, err := p.masterCF(cfg)
	if err != nil {
		return err
	}
	files := map[string]string{"main.cf": mainCF, "master.cf": masterCF}
	for name, content := range files {
		path := filepath.Join(p.configDir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
		if err := backdate(path); err != nil {
			return err
		}
	}
	return nil
}

// mainCF renders main.cf: loopback only, no DNS, relay everything to
// cfg.RelayTo, fast retries, logging to a file, and the milter settings
// of PostfixMainCFExample with cfg.Milter as the socket.
func (p *Postfix) mainCF(cfg PostfixConfig) (string, error) {
	settings := p.baseSettings(cfg)
	example, err := readExample(PostfixMainCFExample)
	if err != nil {
		return "", err
	}
	milters, err := postfixExampleSettings(example)
	if err != nil {
		return "", err
	}
	milters["smtpd_milters"] = cfg.Milter
	for k, v := range milters {
		settings[k] = v
	}
	// What a test asks for explicitly overrides the admins' example.
	if cfg.MilterProtocol != 0 {
		settings["milter_protocol"] = strconv.Itoa(cfg.MilterProtocol)
	}
	if cfg.DefaultAction != "" {
		settings["milter_default_action"] = cfg.DefaultAction
	}
	for k, v := range cfg.Extra {
		settings[k] = v
	}
	return renderSettings(settings)
}

// baseSettings are the harness's own main.cf settings, and defaults for
// the milter settings in case the example lacks them.
func (p *Postfix) baseSettings(cfg PostfixConfig) map[string]string {
	relayHost, relayPort, _ := net.SplitHostPort(cfg.RelayTo)
	timeout := cfg.CommandTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	timeoutSetting := fmt.Sprintf("%ds", max(1, int(timeout.Round(time.Second)/time.Second)))

	return map[string]string{
		"compatibility_level": "3.6",
		"queue_directory":     filepath.Join(p.Dir, "queue"),
		"data_directory":      filepath.Join(p.Dir, "data"),
		"mail_owner":          "postfix",
		"setgid_group":        "postdrop",
		// postlogd writes every daemon's log to this instance's own
		// file, so no syslogd is needed and instances do not mix.
		"maillog_file":          p.maillog,
		"maillog_file_prefixes": p.Dir,

		"myhostname":           "mta.wasmilter.test",
		"mydomain":             "wasmilter.test",
		"myorigin":             "$myhostname",
		"mydestination":        "",
		"local_recipient_maps": "",
		"alias_maps":           "",
		"alias_database":       "",
		"relay_domains":        "",
		"mynetworks":           "127.0.0.0/8",
		"inet_interfaces":      "127.0.0.1",
		"inet_protocols":       "ipv4",
		"relayhost":            "[" + relayHost + "]:" + relayPort,

		// No DNS anywhere: the relay host is an IP literal, and neither
		// the SMTP client nor smtpd may ask a resolver about anything.
		"smtp_dns_support_level":   "disabled",
		"smtp_host_lookup":         "native",
		"smtpd_peername_lookup":    "no",
		"smtp_tls_security_level":  "none",
		"smtpd_tls_security_level": "none",

		// Fast feedback: no punishment sleeps for rejected clients, no
		// inflow throttling, quick retries of deferred mail.
		"smtpd_error_sleep_time": "0s",
		"in_flow_delay":          "0s",
		"queue_run_delay":        "1s",
		"minimal_backoff_time":   "1s",
		"maximal_backoff_time":   "2s",
		"smtp_connect_timeout":   "5s",
		"biff":                   "no",
		"default_process_limit":  "20",

		"milter_protocol":        "6",
		"milter_default_action":  "tempfail",
		"milter_connect_timeout": timeoutSetting,
		"milter_command_timeout": timeoutSetting,
		"milter_content_timeout": timeoutSetting,
	}
}

// renderSettings writes settings as sorted "name = value" lines.
func renderSettings(settings map[string]string) (string, error) {
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("# Written by wasmilter's mtatest harness.\n")
	for _, name := range names {
		value := settings[name]
		if strings.ContainsAny(name+value, "\r\n") {
			return "", fmt.Errorf("main.cf setting %s: line break in name or value", name)
		}
		fmt.Fprintf(&b, "%s = %s\n", name, value)
	}
	return b.String(), nil
}

// masterCF renders master.cf: smtpd on the instance's port and the
// services a relaying Postfix uses, none chrooted (the instance's files
// are not inside a chroot tree).
func (p *Postfix) masterCF(cfg PostfixConfig) (string, error) {
	notices := ""
	if p.NoticeAddr != "" {
		notices = NoticeListenerLine(p.NoticeAddr)
		names := make([]string, 0, len(cfg.NoticeListenerOptions))
		for name := range cfg.NoticeListenerOptions {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			value := cfg.NoticeListenerOptions[name]
			if strings.ContainsAny(name+value, " \t\r\n") {
				return "", fmt.Errorf("notice listener option %s=%q: no spaces or line breaks (use commas)", name, value)
			}
			notices += " -o " + name + "=" + value
		}
		notices += "\n"
	}
	return "# Written by wasmilter's mtatest harness.\n" +
		p.SMTPAddr + " inet n - n - - smtpd\n" + notices + `pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
`, nil
}
