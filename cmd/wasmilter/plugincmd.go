package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"
)

// The scaffold of `wasmilter plugin new`: a Go plugin with a headers hook,
// its go.mod, a test that runs it through the plugin host, and a README.
//
//go:embed plugintemplate/*.tmpl
var pluginTemplates embed.FS

// scaffoldFiles maps each template to the file it becomes.
var scaffoldFiles = []struct{ template, file string }{
	{"main.go.tmpl", "main.go"},
	{"main_test.go.tmpl", "main_test.go"},
	{"go.mod.tmpl", "go.mod"},
	{"README.md.tmpl", "README.md"},
}

// scaffold is what the templates are filled with.
type scaffold struct {
	Module    string // the module path, as given
	Name      string // its last element: the plugin's name and directory
	GoVersion string // the go directive
	Version   string // the wasmilter release to require; "" for a development build
	Replace   string // a wasmilter checkout to build against, or ""
}

func runPlugin(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprintln(stderr, "usage: wasmilter plugin new [-dir DIR] [-replace WASMILTER_CHECKOUT] NAME")
		return exitError{code: 2}
	}
	fs := flag.NewFlagSet("wasmilter plugin new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to create (default: the last element of NAME)")
	replace := fs.String("replace", "", "build against this wasmilter checkout (a replace directive) instead of a release")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wasmilter plugin new [-dir DIR] [-replace WASMILTER_CHECKOUT] NAME")
		fmt.Fprintln(stderr, "\nNAME is the Go module path of the new plugin, e.g. nolottery or example.org/nolottery.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitError{code: 2}
	}
	s, err := newScaffold(fs.Arg(0), *replace)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = s.Name
	}
	if err := writeScaffold(*dir, s); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (module %s)\n\n  cd %s\n  go mod tidy\n  go test ./...\n  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s.wasm .\n",
		*dir, s.Module, *dir, s.Name)
	return nil
}

// modulePathElem is what the scaffold accepts in a module path element: a
// safe subset of Go's rules that can also go into Go strings, a header
// value and a file name unquoted.
var modulePathElem = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func newScaffold(module, replace string) (scaffold, error) {
	for _, elem := range strings.Split(module, "/") {
		if !modulePathElem.MatchString(elem) {
			return scaffold{}, fmt.Errorf("%q is not a module path such as nolottery or example.org/nolottery", module)
		}
	}
	s := scaffold{Module: module, Name: path.Base(module), GoVersion: goDirective(), Replace: replace}
	if v := version(); strings.HasPrefix(v, "v") {
		s.Version = v // a release: the plugin builds against the same SDK
	}
	return s, nil
}

// goDirective is the running toolchain's version, which built this
// wasmilter and so satisfies its module's go line.
func goDirective() string {
	if m := regexp.MustCompile(`^go(\d+\.\d+(\.\d+)?)`).FindStringSubmatch(runtime.Version()); m != nil {
		return m[1]
	}
	return "1.26"
}

// writeScaffold creates dir and the scaffold's files in it. It refuses a
// directory that has anything in it: a scaffold never overwrites work.
func writeScaffold(dir string, s scaffold) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	contents := make([][]byte, len(scaffoldFiles))
	for i, f := range scaffoldFiles { // render everything before creating anything
		content, err := renderTemplate(f.template, s)
		if err != nil {
			return err
		}
		contents[i] = content
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, f := range scaffoldFiles {
		if err := os.WriteFile(filepath.Join(dir, f.file), contents[i], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func renderTemplate(name string, s scaffold) ([]byte, error) {
	// << >> as delimiters: Go composite literals are full of {{ }}.
	t, err := template.New(name).Delims("<<", ">>").ParseFS(pluginTemplates, "plugintemplate/"+name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}
