package milter

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// Listen opens the listening socket for spec (see ParseAddress) with a unix
// socket's permissions set to mode (0 keeps the umask's default); see
// ListenSocket.
func Listen(spec string, mode os.FileMode) (net.Listener, error) {
	return ListenSocket(spec, SocketOptions{Mode: mode})
}

// SocketOptions are the permissions of a unix socket, so that the MTA's
// user (Postfix's smtpd runs as postfix) can connect and nobody else can.
type SocketOptions struct {
	Mode  os.FileMode // 0 keeps the umask's default
	Owner string      // user name or numeric uid; "" leaves it to the process
	Group string      // group name or numeric gid; "" leaves it to the process
}

// ListenSocket opens the listening socket for spec (see ParseAddress). For a
// unix socket it first removes a stale socket file left by a previous run
// (only if it is a socket and nothing answers on it), then creates the
// socket with o's owner, group and mode already set when it appears at its
// path (see listenUnix). The listener removes the socket file when closed.
func ListenSocket(spec string, o SocketOptions) (net.Listener, error) {
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
	return listenUnix(address, o)
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path is
// 108 bytes with the terminating NUL).
const maxSocketPath = 107

// socketBound is called with the private path of a new unix socket right
// after bind, before its permissions are set; tests check there that
// nobody else can reach it yet.
var socketBound = func(string) {}

// listenUnix creates the socket inside a private directory (mode 0700,
// next to path), sets its owner, group and mode there, and only then links
// it to path. Creating it at path and fixing it up afterwards would leave
// a window in which the socket exists with the umask's permissions (often
// 0755 for the socket, i.e. connectable by every local user): a local
// process could connect in that window and keep its connection.
func listenUnix(path string, o SocketOptions) (net.Listener, error) {
	uid, gid, err := o.ids()
	if err != nil {
		return nil, fmt.Errorf("milter: unix socket %s: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".wm")
	if err != nil {
		return nil, fmt.Errorf("milter: private directory for unix socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	private := filepath.Join(dir, "s")
	if len(private) > maxSocketPath {
		return nil, fmt.Errorf("milter: unix socket %s: path too long (it is created as %s first, %d bytes, limit %d)",
			path, private, len(private), maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: private, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("milter: listening on unix socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the private name is gone; UnixListener removes path
	socketBound(private)
	if err := setPermissions(private, o.Mode, uid, gid); err != nil {
		ln.Close()
		return nil, fmt.Errorf("milter: unix socket %s: %w", path, err)
	}
	// Link, not rename: a server that started meanwhile keeps its socket.
	if err := os.Link(private, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("milter: placing unix socket at %s: %w", path, err)
	}
	return &UnixListener{UnixListener: ln, path: path, unlink: true}, nil
}

// setPermissions sets owner and group (-1: unchanged), then the mode.
func setPermissions(path string, mode os.FileMode, uid, gid int) error {
	if uid != -1 || gid != -1 {
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("setting owner %d and group %d (-1: unchanged): %w", uid, gid, err)
		}
	}
	if mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("setting mode %#o: %w", mode, err)
		}
	}
	return nil
}

// ids resolves Owner and Group to numeric ids; -1 for "leave as is".
func (o SocketOptions) ids() (uid, gid int, err error) {
	uid, gid = -1, -1
	if o.Owner != "" {
		if uid, err = lookupID(o.Owner, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		}); err != nil {
			return 0, 0, fmt.Errorf("socket owner %q: %w", o.Owner, err)
		}
	}
	if o.Group != "" {
		if gid, err = lookupID(o.Group, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		}); err != nil {
			return 0, 0, fmt.Errorf("socket group %q: %w", o.Group, err)
		}
	}
	return uid, gid, nil
}

// lookupID takes a number as it is and looks a name up.
func lookupID(name string, lookup func(string) (string, error)) (int, error) {
	id := name
	if _, err := strconv.Atoi(name); err != nil {
		if id, err = lookup(name); err != nil {
			return 0, err
		}
	}
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("id %q is not a non-negative number", id)
	}
	return n, nil
}

// UnixListener is a unix socket listener that removes its socket file at
// Close, like net.UnixListener does for the path it was bound to (here the
// socket was bound under a private name and linked into place).
type UnixListener struct {
	*net.UnixListener
	path   string
	unlink bool
	once   sync.Once
}

// SetUnlinkOnClose says whether Close removes the socket file (default true).
func (l *UnixListener) SetUnlinkOnClose(unlink bool) { l.unlink = unlink }

// Addr is the socket's place, where MTAs connect: not the private name it
// was bound under, which is gone once it is linked into place.
func (l *UnixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening and removes the socket file.
func (l *UnixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if l.unlink {
			_ = os.Remove(l.path)
		}
	})
	return err
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
