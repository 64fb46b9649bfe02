//go:build wasip1

// Command snoop is a test guest that tries to reach outside its sandbox at
// the headers hook: read files, list a directory, create a file, read the
// environment and its arguments. It reports every result in an X-Snoop
// header, so a test can check that all of them failed or came back empty.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/wasmilter/wasmilter/sdk"
)

func main() {}

func attempt(name string, err error, got string) string {
	if err != nil {
		return name + "=denied"
	}
	return fmt.Sprintf("%s=GOT(%q)", name, got)
}

func init() {
	sdk.Register(sdk.Plugin{Headers: func(m *sdk.Message) sdk.Verdict {
		var results []string
		for _, path := range []string{"/etc/passwd", "/etc/hostname", "/proc/self/environ", "."} {
			b, err := os.ReadFile(path)
			results = append(results, attempt("read:"+path, err, string(b)))
		}
		entries, err := os.ReadDir("/")
		results = append(results, attempt("readdir:/", err, fmt.Sprint(len(entries))))
		f, err := os.Create("/tmp/snoop-was-here")
		if err == nil {
			f.Close()
		}
		results = append(results, attempt("create:/tmp", err, "created"))
		env := strings.Join(os.Environ(), ",")
		results = append(results, "env="+fmt.Sprint(len(os.Environ()))+":"+env)
		results = append(results, "args="+fmt.Sprint(len(os.Args)))
		m.AddHeader("X-Snoop", strings.Join(results, "; "))
		return sdk.Continue()
	}})
}
