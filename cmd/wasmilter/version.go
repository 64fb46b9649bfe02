package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/server"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlagSet("version", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wasmilter %s\n", server.Version())
	fmt.Fprintf(stdout, "plugin ABI %d\n", abi.Version)
	fmt.Fprintf(stdout, "wazero %s\n", server.DependencyVersion("github.com/tetratelabs/wazero"))
	fmt.Fprintf(stdout, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// version is wasmilter's version (see server.Version).
func version() string { return server.Version() }
