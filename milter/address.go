package milter

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParseAddress turns a milter socket specification into a network and an
// address for net.Listen. It accepts
//
//   - Postfix notation: "inet:127.0.0.1:8891", "inet:[::1]:8891",
//     "inet:localhost:8891", "unix:/path/milter.sock" (also "local:/path");
//   - Sendmail/libmilter notation: "inet:8891@127.0.0.1", "inet6:8891@::1",
//     and "inet:8891" (all addresses);
//   - a bare absolute path, which libmilter also reads as a unix socket.
func ParseAddress(spec string) (network, address string, err error) {
	if strings.HasPrefix(spec, "/") {
		return "unix", spec, nil
	}
	transport, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return "", "", fmt.Errorf("milter address %q: missing transport prefix (inet:, inet6:, unix: or local:)", spec)
	}
	switch strings.ToLower(transport) {
	case "unix", "local":
		if rest == "" {
			return "", "", fmt.Errorf("milter address %q: empty socket path", spec)
		}
		return "unix", rest, nil
	case "inet":
		address, err = parseInet(rest, false)
		if err != nil {
			return "", "", fmt.Errorf("milter address %q: %w", spec, err)
		}
		return "tcp", address, nil
	case "inet6":
		address, err = parseInet(rest, true)
		if err != nil {
			return "", "", fmt.Errorf("milter address %q: %w", spec, err)
		}
		return "tcp6", address, nil
	}
	return "", "", fmt.Errorf("milter address %q: unknown transport %q (want inet, inet6, unix or local)", spec, transport)
}

// parseInet reads "port@host" (Sendmail), "port" (Sendmail, any address)
// or "host:port" (Postfix, IPv6 in brackets) and returns "host:port" for
// net.Listen.
func parseInet(s string, ipv6 bool) (string, error) {
	if port, host, ok := strings.Cut(s, "@"); ok {
		if err := checkPort(port); err != nil {
			return "", err
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			return "", errors.New("empty host after '@'")
		}
		return net.JoinHostPort(host, port), nil
	}
	if checkPort(s) == nil {
		return net.JoinHostPort("", s), nil
	}
	if ipv6 && !strings.HasPrefix(s, "[") {
		return "", errors.New(`want "port@host" or "[host]:port"`)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return "", errors.New("an IPv6 address must be written in brackets: inet:[::1]:port")
		}
		return "", fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	if err := checkPort(port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 || p == "" || p[0] == '+' || p[0] == '-' {
		return fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return nil
}

// Listen opens the listening socket for spec (see ParseAddress). For a unix
// socket it first removes a stale socket file left by a previous run (only
// if it is a socket and nothing answers on it), then creates the socket and
// sets its permissions to mode (0 keeps the umask's default), so that the
// MTA's user can connect.
func Listen(spec string, mode os.FileMode) (net.Listener, error) {
	network, address, err := ParseAddress(spec)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("milter: listening on %s: %w", spec, err)
		}
		return ln, nil
	}
	return listenUnix(address, mode)
}

func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("milter: listening on unix socket %s: %w", path, err)
	}
	if mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("milter: setting mode %#o on %s: %w", mode, path, err)
		}
	}
	return ln, nil
}

// removeStaleSocket deletes path if it is a socket nobody listens on. A
// regular file is never removed (a typo in the config must not delete
// data), and a live socket means another instance is running.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("milter: checking %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("milter: %s exists and is not a socket; refusing to remove it", path)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("milter: %s is in use by a running server", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("milter: removing stale socket %s: %w", path, err)
	}
	return nil
}
