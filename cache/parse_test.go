package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var (
	utc     = time.UTC
	mskZone = time.FixedZone("", 3*3600)
	jstZone = time.FixedZone("", 9*3600)
)

func date(h, m, s int, loc *time.Location) time.Time {
	return time.Date(2026, 11, 22, h, m, s, 0, loc)
}

// corpusCase is what a file in testdata/headers must parse to. Problems
// are matched as substrings, in order; an empty list means none.
type corpusCase struct {
	file     string
	err      string // non-empty: ParseRaw must fail with this in the message
	want     Properties
	problems []string
	check    func(t *testing.T, p *Properties, fields []Field) // extra checks
}

var corpus = []corpusCase{
	{file: "folded.eml", want: Properties{
		MessageID: "20261122.1234@mail.example.net", From: "alice@example.net", FromName: "Alice Example",
		ToCount: 3, Date: date(6, 59, 57, utc), Subject: "a subject that was folded over three lines",
		ContentType: "text/plain", ReceivedCount: 2, HeaderCount: 9, HeaderBytes: 570,
	}, check: func(t *testing.T, _ *Properties, fields []Field) {
		// Folds are kept in the fields, as the MTA passes them.
		if got := fieldValue(fields, "Subject"); got != "a subject that was\r\n folded over\r\n\tthree lines" {
			t.Errorf("Subject field = %q, want the folds kept", got)
		}
	}},
	{file: "encoded-utf8.eml", want: Properties{
		MessageID: "utf8@example.net", From: "juergen@example.de", FromName: "Jürgen Müller", ToCount: 1,
		Date: date(6, 59, 57, utc), Subject: "Grüße aus Köln ☕", HeaderCount: 5, HeaderBytes: 207,
	}},
	{file: "encoded-latin1.eml", want: Properties{
		MessageID: "latin1@example.net", From: "andre@example.fr", FromName: "André", ToCount: 1,
		Date: date(6, 59, 57, utc), Subject: "Café crème", HeaderCount: 5, HeaderBytes: 187,
	}},
	{file: "encoded-windows1252.eml", want: Properties{
		MessageID: "cp1252@example.net", From: "shop@example.com", ToCount: 1,
		Date: date(6, 59, 57, utc), Subject: "Only €20 – “today”", HeaderCount: 5, HeaderBytes: 174,
	}},
	{file: "encoded-koi8r.eml", want: Properties{
		MessageID: "koi8r@example.ru", From: "ivan@example.ru", FromName: "Иван", ToCount: 1,
		Date: date(6, 59, 57, mskZone), Subject: "Привет, мир", HeaderCount: 5, HeaderBytes: 179,
	}},
	{file: "encoded-iso2022jp.eml", want: Properties{
		MessageID: "jp@example.jp", From: "taro@example.jp", ToCount: 1,
		Date: date(15, 59, 57, jstZone), Subject: "こんにちは", HeaderCount: 5, HeaderBytes: 165,
	}},
	{file: "unknown-charset.eml", want: Properties{
		MessageID: "unknown-cs@example.net", From: "someone@example.net", ToCount: 1,
		Date: date(6, 59, 57, utc), Subject: "=?x-no-such-charset?Q?abc?=", HeaderCount: 5, HeaderBytes: 163,
	}, problems: []string{`Subject: cannot decode encoded words (charset "x-no-such-charset"`}},
	{file: "duplicates.eml", want: Properties{
		MessageID: "dup@example.net", From: "first@example.net", ToCount: 3,
		Date: date(6, 59, 57, utc), Subject: "first subject", HeaderCount: 11, HeaderBytes: 267,
	}, problems: []string{"From: 2 fields", "To: 2 fields", "Subject: 2 fields"},
		check: func(t *testing.T, _ *Properties, fields []Field) {
			var traces []string
			for _, f := range fields {
				if f.Name == "X-Trace" {
					traces = append(traces, f.Value)
				}
			}
			if !slices.Equal(traces, []string{"one", "two", "three"}) {
				t.Errorf("duplicate fields out of order: %q", traces)
			}
		}},
	{file: "no-message-id.eml", want: Properties{
		From: "nomid@example.net", ToCount: 1, Date: date(6, 59, 57, utc), Subject: "no message id here",
		HeaderCount: 4, HeaderBytes: 114,
	}},
	{file: "raw-8bit.eml", want: Properties{
		MessageID: "raw8@example.net", From: "zoe@example.net", FromName: "Zoë Ünicode", ToCount: 1,
		Date: date(6, 59, 57, utc), Subject: "caf\uFFFD cr\uFFFDme (latin-1, unencoded)", HeaderCount: 5, HeaderBytes: 175,
	}, problems: []string{"Subject: 8-bit bytes that are not UTF-8"}},
	{file: "thousand-headers.eml", want: Properties{
		MessageID: "thousand@example.net", From: "many@example.net", ToCount: 1, Date: date(6, 59, 57, utc),
		Subject: "a thousand fields", HeaderCount: 1000, HeaderBytes: 31878,
	}},
	{file: "long-line-64k.eml", want: Properties{
		MessageID: "long@example.net", From: "long@example.net", ToCount: 1, Date: date(6, 59, 57, utc),
		Subject: strings.Repeat("x", 65536), HeaderCount: 5, HeaderBytes: 65663,
	}},
	{file: "no-colon.eml", err: `line 3: no colon: a header field is "name: value", got "This line has no colon at all"`},
	{file: "continuation-first.eml", err: "line 1: continuation line (starts with white space) with no field before it"},
	{file: "nul-byte.eml", err: "line 2: NUL byte at column 11"},
	{file: "dsn.eml", want: Properties{
		MessageID: "dsn-1@mx.example.org", From: "MAILER-DAEMON@mx.example.org", FromName: "Mail Delivery System",
		ToCount: 1, Date: date(7, 0, 0, utc), Subject: "Undelivered Mail Returned to Sender",
		ContentType: "multipart/report", AutoSubmitted: "auto-replied", IsDeliveryReport: true,
		HeaderCount: 9, HeaderBytes: 378,
	}},
	{file: "auto-submitted.eml", want: Properties{
		MessageID: "vacation@example.net", From: "vacation@example.net", ToCount: 1, Date: date(6, 59, 57, utc),
		Subject: "Out of office", AutoSubmitted: "auto-replied", Precedence: "bulk", HeaderCount: 7, HeaderBytes: 228,
	}},
	{file: "list-id.eml", want: Properties{
		MessageID: "list@example.net", From: "poster@example.net", Sender: "golang-nuts@googlegroups.example",
		ToCount: 1, CcCount: 2, Date: date(6, 59, 57, utc), Subject: "[go-nuts] generics",
		ListID: "golang-nuts.googlegroups.example", Precedence: "list", HeaderCount: 9, HeaderBytes: 348,
	}},
	{file: "stamp.eml", want: Properties{
		MessageID: "stamp@example.net", From: "s@example.net", ToCount: 1, Date: date(6, 59, 57, utc),
		Subject: "stamped", Stamp: "v=1; id=aaaaaaaaaaaaaaaaaaaaaaaaaa; t=2026-11-22T06:59:57Z",
		HeaderCount: 7, HeaderBytes: 248,
	}},
	{file: "broken-values.eml", want: Properties{
		CcCount: 1, Subject: "=?UTF-8?Q?unterminated", HeaderCount: 7, HeaderBytes: 184,
	}, problems: []string{"Message-ID: not a msg-id", "From: mail: invalid string", "Date: mail: header could not be parsed",
		"Content-Type: mime: expected token after slash"}},
	{file: "missing-required.eml", want: Properties{
		Subject: "no from, no date", HeaderCount: 2, HeaderBytes: 48,
	}, problems: []string{"From: missing", "Date: missing"}},
}

func TestParseCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/headers/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(corpus) {
		t.Errorf("testdata/headers has %d files, the table %d: every file needs its expectation", len(files), len(corpus))
	}
	for _, tc := range corpus {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/headers", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p, fields, err := ParseRaw(bytes.NewReader(data), ParseOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRaw error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRaw: %v", err)
			}
			checkProperties(t, p, tc.want, tc.problems)
			if tc.check != nil {
				tc.check(t, p, fields)
			}
			// Parse of the returned fields is what the pipeline will do
			// with the MTA's fields: it must agree with ParseRaw.
			again := Parse(fields, ParseOptions{})
			checkProperties(t, again, tc.want, tc.problems)
		})
	}
}

func checkProperties(t *testing.T, got *Properties, want Properties, problems []string) {
	t.Helper()
	if !got.Date.Equal(want.Date) {
		t.Errorf("Date = %v, want %v", got.Date, want.Date)
	}
	if len(got.Problems) != len(problems) {
		t.Errorf("Problems = %q, want %d matching %q", got.Problems, len(problems), problems)
	} else {
		for i, p := range problems {
			if !strings.Contains(got.Problems[i], p) {
				t.Errorf("Problems[%d] = %q, want it to contain %q", i, got.Problems[i], p)
			}
		}
	}
	g, w := *got, want
	g.Date, w.Date, g.Problems, w.Problems = time.Time{}, time.Time{}, nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("properties differ:\n got %+v\nwant %+v", g, w)
	}
}

func fieldValue(fields []Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func TestParseRawLimits(t *testing.T) {
	long, err := os.ReadFile("testdata/headers/long-line-64k.eml")
	if err != nil {
		t.Fatal(err)
	}
	thousand, err := os.ReadFile("testdata/headers/thousand-headers.eml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		opts ParseOptions
		err  string
	}{
		{"field over limit", long, ParseOptions{MaxFieldBytes: 32 << 10}, "line 5: field Subject is over 32768 bytes"},
		{"folded field over limit", []byte("Subject: a\n b\n c\n\n"), ParseOptions{MaxFieldBytes: 14}, "line 3: field Subject is over 14 bytes"},
		{"too many fields", thousand, ParseOptions{MaxFields: 999}, "line 1000: more than 999 header fields"},
		{"block over limit", thousand, ParseOptions{MaxHeaderBytes: 1000}, "header block is over 1000 bytes"},
		{"bad name", []byte("Bad Name: x\n\n"), ParseOptions{}, `line 1: field name "Bad Name": byte 0x20 at column 4`},
		{"empty name", []byte(": x\n\n"), ParseOptions{}, "line 1: empty field name"},
		{"stray CR line", []byte("From: a@b\n\r\r\n\n"), ParseOptions{}, "line 2: no colon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseRaw(bytes.NewReader(tc.data), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error = %v, want one containing %q", err, tc.err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes; a long line must not become a long error", len(err.Error()))
			}
		})
	}
}

func TestParseRawStopsAtBlankLine(t *testing.T) {
	in := "From: a@example.org\r\nSubject: hi\r\n\r\nBody: not a header\r\n"
	_, fields, err := ParseRaw(strings.NewReader(in), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 {
		t.Errorf("fields = %q, want the two before the blank line", fields)
	}
}

// TestParseMTAFolds checks values as Postfix passes them: folds as "\n\t",
// no leading space.
func TestParseMTAFolds(t *testing.T) {
	fields := []Field{
		{"From", "\"Folded\n\tName\" <x@Example.ORG>"},
		{"Date", "Sun, 22 Nov 2026\n 06:59:57 +0000"},
		{"To", "a@example.org,\n\tb@example.org"},
		{"Subject", "one\n\ttwo"},
	}
	p := Parse(fields, ParseOptions{})
	if p.From != "x@example.org" || p.FromName != "Folded Name" || p.ToCount != 2 || p.Subject != "one two" ||
		!p.Date.Equal(date(6, 59, 57, utc)) || len(p.Problems) != 0 {
		t.Errorf("got %+v", *p)
	}
}

func TestParseCustomStampHeader(t *testing.T) {
	fields := []Field{{"X-Wasmilter-Stamp", "default"}, {"X-Our-Stamp", "custom"}}
	if got := Parse(fields, ParseOptions{StampHeader: "x-our-stamp"}).Stamp; got != "custom" {
		t.Errorf("Stamp = %q, want the configured header's value", got)
	}
}

func TestParseBoundsProblems(t *testing.T) {
	var fields []Field
	for range 100 {
		fields = append(fields, Field{"To", "<<<not an address"}) // each To is parsed, each fails
	}
	p := Parse(fields, ParseOptions{})
	if len(p.Problems) != maxProblems {
		t.Fatalf("%d problems, want at most %d", len(p.Problems), maxProblems)
	}
	if last := p.Problems[maxProblems-1]; !strings.Contains(last, "more problems") {
		t.Errorf("last problem %q should say how many were left out", last)
	}
}

// TestParseSharesNoMemory: stored properties must not pin the MTA's
// buffers, or the byte accounting would undercount.
func TestParseSharesNoMemory(t *testing.T) {
	value := []byte("  list  ")
	fields := []Field{{"Precedence", string(value)}, {"X-Wasmilter-Stamp", "v=1; id=x"}}
	p := Parse(fields, ParseOptions{})
	for _, f := range fields {
		for _, s := range p.stringFields() {
			if len(*s) > 0 && overlaps(*s, f.Value) {
				t.Errorf("property %q shares memory with field %s", *s, f.Name)
			}
		}
	}
}

func overlaps(a, b string) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptrOf(a), uintptrOf(b)
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

func uintptrOf(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }
