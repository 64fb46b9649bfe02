// Command wasmilter-bench measures a milter by acting as the MTA: it opens
// milter connections like Postfix, sends realistic messages, and prints
// throughput, latency percentiles, the milter's verdicts and changes, and
// (with -pid) the milter process's CPU time per message. It works against
// any milter; the logic is in package loadgen. It always stops by itself:
// after -n messages or -d, whichever comes first. The exit status is 1 if
// any message failed (a protocol error, a timeout, a refused connection),
// 2 for bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, apart from the process: testable.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, asJSON, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wasmilter-bench:", err)
		return 2
	}
	res, err := loadgen.Run(ctx, cfg)
	if res != nil {
		if werr := report(res, asJSON, stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "wasmilter-bench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (loadgen.Config, bool, error) {
	fs := flag.NewFlagSet("wasmilter-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.Milter, "milter", "inet:127.0.0.1:8897", "milter socket: inet:HOST:PORT or unix:PATH (Sendmail's inet:PORT@HOST and local:PATH too)")
	fs.IntVar(&cfg.Concurrency, "c", 8, "concurrent milter connections (SMTP sessions)")
	fs.IntVar(&cfg.Messages, "n", 10000, "stop after this many messages (0: no count bound)")
	fs.DurationVar(&cfg.Duration, "d", 60*time.Second, "stop after this long (0: no time bound)")
	fs.IntVar(&cfg.MessagesPerConn, "messages-per-conn", 10, "messages per SMTP session, i.e. per milter connection")
	fs.IntVar(&cfg.Rcpts, "rcpts", 1, "recipients per message")
	msgFile := fs.String("msg", "", "RFC 5322 message file to send (default: a built-in 4 KB newsletter with 20 header fields)")
	body := fs.Bool("body", true, "send the message body (when the milter negotiated it); false sends headers only")
	version := fs.Int("version", 6, "milter protocol version offered, as Postfix's milter_protocol: 2, 3, 4 or 6")
	actions := fs.Uint("offer-actions", 0, "action mask offered, e.g. 0x1ff (0: what Postfix offers)")
	protocol := fs.Uint("offer-protocol", 0, "protocol mask offered, e.g. 0x1fffff (0: what Postfix offers for -version)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "limit for connecting, each write and each reply")
	fs.IntVar(&cfg.MaxErrors, "max-errors", 0, "failed messages tolerated before stopping (0: stop at the first)")
	fs.IntVar(&cfg.ServerPID, "pid", 0, "milter process to sample CPU time of (from /proc/PID/stat)")
	fs.BoolVar(&cfg.NoDelay, "nodelay", false, "set TCP_NODELAY (Postfix does not)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Messages < 0 || cfg.Duration < 0 || (cfg.Messages == 0 && cfg.Duration == 0) {
		return cfg, false, errors.New("-n and -d must not be negative, and one of them must be set: the run has to stop by itself")
	}
	cfg.NoBody = !*body
	offer, err := loadgen.PostfixOffer(*version)
	if err != nil {
		return cfg, false, fmt.Errorf("-version: %w", err)
	}
	if *actions != 0 {
		offer.Actions = gomilter.OptAction(*actions)
	}
	if *protocol != 0 {
		offer.Protocol = gomilter.OptProtocol(*protocol)
	}
	cfg.Offer = offer
	if *msgFile != "" {
		if cfg.Message, err = readMessage(*msgFile); err != nil {
			return cfg, false, err
		}
	}
	return cfg, *asJSON, nil
}

func readMessage(path string) (*loadgen.Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-msg: %w", err)
	}
	defer f.Close()
	m, err := loadgen.ParseMessage(f)
	if err != nil {
		return nil, fmt.Errorf("-msg %s: %w", path, err)
	}
	return m, nil
}

func report(res *loadgen.Result, asJSON bool, w io.Writer) error {
	if !asJSON {
		return res.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
