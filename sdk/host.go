package sdk

import (
	"fmt"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// hostCalls is the set of host functions the SDK uses, in the shape of the
// ABI: functions returning data write into a caller-supplied buffer and
// return the length needed, or abi.ResultAbsent. On wasip1 the glue in
// imports_wasip1.go implements it with //go:wasmimport functions; tests
// substitute a fake so everything above this seam runs on any platform.
type hostCalls interface {
	log(level abi.LogLevel, msg string)
	now() int64
	macro(name string, out []byte) int32
	stamp(out []byte) int32
	record(out []byte) int32
	properties(out []byte) int32
	kvGet(key string, out []byte) int32
	kvSet(key string, value []byte, ttlMillis int64) int32
	kvIncr(key string, delta, ttlMillis int64, out *[8]byte) int32
}

// host is the host the SDK talks to. Off wasip1 it is a host that has
// nothing, until a test installs a fake.
var host hostCalls = noHost{}

// noHost answers every question with "absent" and drops log lines: the SDK
// compiled for a platform without a wasmilter host.
type noHost struct{}

func (noHost) log(abi.LogLevel, string)   {}
func (noHost) now() int64                 { return 0 }
func (noHost) macro(string, []byte) int32 { return abi.ResultAbsent }
func (noHost) stamp([]byte) int32         { return abi.ResultAbsent }
func (noHost) record([]byte) int32        { return abi.ResultAbsent }
func (noHost) properties([]byte) int32    { return abi.ResultAbsent }
func (noHost) kvGet(string, []byte) int32 { return abi.ResultAbsent }
func (noHost) kvSet(string, []byte, int64) int32 {
	return abi.ResultRefused
}
func (noHost) kvIncr(string, int64, int64, *[8]byte) int32 { return abi.ResultRefused }

// scratch receives what host functions write. It is reused across calls and
// grown on demand; results are copied out before the next call.
var scratch = make([]byte, 256)

// fetch runs a host function that writes into a buffer, growing the scratch
// buffer and asking again when the answer did not fit. It returns the bytes
// (valid until the next fetch) and false when the host says absent.
func fetch(call func(out []byte) int32) ([]byte, bool) {
	// A host can legitimately change its answer between two calls only if
	// its state changed; two rounds cover the normal case and the bound keeps
	// a misbehaving host from looping us forever.
	for range 3 {
		n := call(scratch[:cap(scratch)])
		if n < 0 {
			return nil, false
		}
		if int(n) <= cap(scratch) {
			return scratch[:n], true
		}
		scratch = make([]byte, n)
	}
	return nil, false
}

// hostMacro asks the host for an MTA macro.
func hostMacro(name string) (string, bool) {
	b, ok := fetch(func(out []byte) int32 { return host.macro(name, out) })
	if !ok {
		return "", false
	}
	return string(b), true
}

// hostStamp asks the host for the message's stamp.
func hostStamp() (abi.Stamp, bool, error) { return fetchDecoded(host.stamp, abi.DecodeStamp, "stamp") }

// hostRecord asks the host for the message's retry-ledger record.
func hostRecord() (abi.Record, bool, error) {
	return fetchDecoded(host.record, abi.DecodeRecord, "record")
}

// hostProperties asks the host for the message's header properties.
func hostProperties() (abi.Properties, bool, error) {
	return fetchDecoded(host.properties, abi.DecodeProperties, "properties")
}

// fetchDecoded runs a host function answering an encoded value and decodes
// it; ok is false when the host says absent.
func fetchDecoded[T any](call func(out []byte) int32, decode func([]byte) (T, error), what string) (T, bool, error) {
	var zero T
	b, ok := fetch(call)
	if !ok {
		return zero, false, nil
	}
	v, err := decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("decoding the %s from the host: %w", what, err)
	}
	return v, true, nil
}

// LogLevel is the severity of a log line.
type LogLevel = abi.LogLevel

// Log levels.
const (
	LogDebug = abi.LogDebug
	LogInfo  = abi.LogInfo
	LogWarn  = abi.LogWarn
	LogError = abi.LogError
)

// Logf writes a line to the server's log, attributed to this plugin. Use it
// where no [Message] is at hand (in Init); handlers can use Message.Logf.
func Logf(level LogLevel, format string, args ...any) {
	host.log(level, fmt.Sprintf(format, args...))
}
