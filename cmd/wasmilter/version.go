package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/wasmilter/wasmilter"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlagSet("version", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wasmilter %s\n", version())
	fmt.Fprintf(stdout, "plugin ABI %d\n", abi.Version)
	fmt.Fprintf(stdout, "wazero %s\n", depVersion("github.com/tetratelabs/wazero"))
	fmt.Fprintf(stdout, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// version prefers the -X build flag, then the module version `go install`
// records, so an installed binary reports what it was installed as.
func version() string {
	if wasmilter.Version != "devel" {
		return wasmilter.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return wasmilter.Version
}

func depVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}
