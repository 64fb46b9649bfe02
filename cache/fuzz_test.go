package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRaw: any bytes either parse or fail with an error naming a
// line; never a panic. Parsed properties are valid UTF-8 (plugins get
// text) and Parse of the returned fields agrees with ParseRaw.
func FuzzParseRaw(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, fields, err := ParseRaw(bytes.NewReader(data), ParseOptions{MaxFieldBytes: 4096, MaxHeaderBytes: 64 << 10})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "raw header: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		checkPropertiesSane(t, p, fields)
		again := Parse(fields, ParseOptions{})
		if again.Subject != p.Subject || again.MessageID != p.MessageID || again.HeaderBytes != p.HeaderBytes {
			t.Fatalf("Parse of ParseRaw's fields disagrees: %+v vs %+v", again, p)
		}
	})
}

// FuzzParse: fields as an MTA could pass them, anything in them.
func FuzzParse(f *testing.F) {
	f.Add("Subject", "=?UTF-8?B?R3LDvMOf?=", "From", "\"A\" <a@Example.org>")
	f.Add("Content-Type", "multipart/report; report-type=delivery-status", "Date", "Sun, 22 Nov 2026 06:59:57 +0000")
	f.Add("Message-ID", "<a(comment)@[127.0.0.1]>", "To", "undisclosed-recipients:;")
	f.Add("List-Id", "<\xff\xfe>", "Subject", "=?x-unknown?Q?=FF?=")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		fields := []Field{{n1, v1}, {n2, v2}}
		p := Parse(fields, ParseOptions{})
		checkPropertiesSane(t, p, fields)
		if SourceOf(fields) != SourceOf([]Field{{n1, v1}, {n2, v2}}) {
			t.Fatal("SourceOf is not deterministic")
		}
	})
}

func checkPropertiesSane(t *testing.T, p *Properties, fields []Field) {
	t.Helper()
	if p.HeaderCount != len(fields) {
		t.Fatalf("HeaderCount %d for %d fields", p.HeaderCount, len(fields))
	}
	for _, s := range p.stringFields() {
		if !utf8.ValidString(*s) {
			t.Fatalf("property %q is not UTF-8", *s)
		}
	}
	if len(p.Problems) > maxProblems {
		t.Fatalf("%d problems, bound is %d", len(p.Problems), maxProblems)
	}
	if p.Size() <= 0 {
		t.Fatalf("size %d", p.Size())
	}
}

func addCorpusSeeds(f *testing.F) {
	files, err := filepath.Glob("testdata/headers/*.eml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 8<<10 { // the big ones add nothing but time
			f.Add(data)
		}
	}
}
