package sdk

import (
	"unsafe"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// The host functions, imported from module "wasmilter" (abi.HostModule).
// Pointers are guest memory addresses; Go's wasm port passes unsafe.Pointer
// as an i32.

//go:wasmimport wasmilter log
func importLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport wasmilter now
func importNow() int64

//go:wasmimport wasmilter macro
func importMacro(namePtr unsafe.Pointer, nameLen int32, outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasmilter stamp
func importStamp(outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasmilter record
func importRecord(outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasmilter properties
func importProperties(outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasmilter kv_get
func importKVGet(keyPtr unsafe.Pointer, keyLen int32, outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasmilter kv_set
func importKVSet(keyPtr unsafe.Pointer, keyLen int32, valPtr unsafe.Pointer, valLen int32, ttlMillis int64) int32

//go:wasmimport wasmilter kv_incr
func importKVIncr(keyPtr unsafe.Pointer, keyLen int32, delta, ttlMillis int64, outPtr unsafe.Pointer) int32

func init() { host = wasmHost{} }

// wasmHost implements hostCalls with the imports.
type wasmHost struct{}

func (wasmHost) log(level abi.LogLevel, msg string) {
	importLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

func (wasmHost) now() int64 { return importNow() }

func (wasmHost) macro(name string, out []byte) int32 {
	return importMacro(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), bytesPtr(out), int32(len(out)))
}

func (wasmHost) stamp(out []byte) int32 { return importStamp(bytesPtr(out), int32(len(out))) }

func (wasmHost) record(out []byte) int32 { return importRecord(bytesPtr(out), int32(len(out))) }

func (wasmHost) properties(out []byte) int32 { return importProperties(bytesPtr(out), int32(len(out))) }

func (wasmHost) kvGet(key string, out []byte) int32 {
	return importKVGet(unsafe.Pointer(unsafe.StringData(key)), int32(len(key)), bytesPtr(out), int32(len(out)))
}

func (wasmHost) kvSet(key string, value []byte, ttlMillis int64) int32 {
	return importKVSet(unsafe.Pointer(unsafe.StringData(key)), int32(len(key)), bytesPtr(value), int32(len(value)), ttlMillis)
}

func (wasmHost) kvIncr(key string, delta, ttlMillis int64, out *[8]byte) int32 {
	return importKVIncr(unsafe.Pointer(unsafe.StringData(key)), int32(len(key)), delta, ttlMillis, unsafe.Pointer(out))
}

// bytesPtr returns the address of b's first element, nil for an empty b.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}
