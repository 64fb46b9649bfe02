// Command wasmilter is a milter server for Postfix and Sendmail whose mail
// policies run as sandboxed WebAssembly plugins.
//
//	wasmilter serve   [-config FILE]   attach to the MTA and filter mail
//	wasmilter check   [-config FILE]   validate the config and every plugin
//	wasmilter replay  [-config FILE] [-at +0 -at +10m ...] [flags] MSG.eml
//	                                   run one message through the plugins,
//	                                   or its attempts on a simulated clock
//	wasmilter queue   list|show|release|hold|expire|purge
//	                                   the records of deferred messages
//	wasmilter cache   stats|flush      the header property cache
//	wasmilter reload                   reload the running server's config
//	wasmilter plugin  new NAME         scaffold a Go plugin with its test
//	wasmilter version                  print versions
//
// Without -config the built-in defaults are used: the repository's
// config.toml, embedded in the binary.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

// exitError carries an exit status up to main without printing twice.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var commands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"serve":   runServe,
	"check":   runCheck,
	"plugin":  runPlugin,
	"replay":  runReplay,
	"queue":   runQueue,
	"cache":   runCache,
	"reload":  runReload,
	"version": runVersion,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "wasmilter: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd(args[1:], stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 2
	}
	fmt.Fprintf(stderr, "wasmilter %s: %v\n", args[0], err)
	return 1
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: wasmilter COMMAND [flags]

commands:
  serve    attach to Postfix or Sendmail and filter mail
  check    validate the config and compile every plugin; exit 1 on any problem
  plugin   new NAME: scaffold a Go plugin with a test that runs it through the host
  replay   run a message file through the plugins as the MTA would, print the verdict and changes;
           with -at +0 -at +10m ...: its attempts on a simulated clock, with the delay notices due
  queue    list|show|release|hold|expire|purge the records of deferred messages (running server)
  cache    stats|flush the header property cache (running server)
  reload   make the running server read its config again (like SIGHUP); exit 1 if it refused
  version  print the versions of wasmilter, its ABI and runtime

Each command takes -config FILE; without it the built-in defaults apply.
Run "wasmilter COMMAND -h" for its flags.
`)
}

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("wasmilter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default: the built-in defaults)")
	return fs, cfg
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
