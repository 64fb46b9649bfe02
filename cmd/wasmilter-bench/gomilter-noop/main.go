// Command gomilter-noop serves go-milter v0.5.0's NoOpMilter, unchanged:
// the baseline wasmilter-bench compares other milters with (the protocol
// cost of a Go milter that does nothing). It runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/milter"
)

func main() {
	listen := flag.String("listen", "inet:127.0.0.1:8899", "socket to serve on: inet:HOST:PORT or unix:PATH")
	// Postfix's smtpd runs as the postfix user and must be able to
	// connect to a unix socket: the bench passes 0666.
	mode := flag.Uint("mode", 0, "permissions of a unix socket, e.g. 0666 (0: the umask's default)")
	flag.Parse()
	if err := serve(*listen, os.FileMode(*mode)); err != nil {
		fmt.Fprintln(os.Stderr, "gomilter-noop:", err)
		os.Exit(1)
	}
}

func serve(spec string, mode os.FileMode) error {
	ln, err := milter.Listen(spec, mode)
	if err != nil {
		return err
	}
	srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Fprintf(os.Stderr, "gomilter-noop: serving go-milter's NoOpMilter on %s (pid %d)\n", spec, os.Getpid())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, gomilter.ErrServerClosed) {
		return err
	}
	return nil
}
