package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/wasmilter/wasmilter/loadgen"
)

func bench(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestJSONAgainstGoMilterNoOp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	code, out, errs := bench("-milter", "inet:"+ln.Addr().String(), "-n", "12", "-c", "2", "-messages-per-conn", "3", "-json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output is not the JSON result: %v\n%s", err, out)
	}
	if res.Messages != 12 || res.Actions[loadgen.ActionAccept] != 12 || res.MessagesPerConn != 3 {
		t.Fatalf("result %+v", res)
	}
}

func TestRefusedConnectionExitsOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "inet:" + ln.Addr().String()
	ln.Close()
	code, _, errs := bench("-milter", addr, "-n", "3")
	if code != 1 || !strings.Contains(errs, addr) || !strings.Contains(errs, "refused") {
		t.Fatalf("exit %d, stderr %q; want 1 and the address", code, errs)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0", "-d", "0"},
		{"-version", "5"},
		{"-msg", "/nonexistent/message.eml"},
		{"extra"},
		{"-no-such-flag"},
	} {
		if code, _, _ := bench(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
