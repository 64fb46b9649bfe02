//go:build wasip1

// Command badabi is a test guest that claims ABI version 999. Its exports are
// written by hand, without the SDK, and are otherwise well-formed, so the
// only reason for a host to refuse it is the version.
package main

import "unsafe"

var buf = make([]byte, 4096)

//go:wasmexport wasmilter_abi_version
func abiVersion() int32 { return 999 }

//go:wasmexport wasmilter_buffer
func buffer(size int32) unsafe.Pointer {
	if int(size) > len(buf) {
		buf = make([]byte, size)
	}
	return unsafe.Pointer(&buf[0])
}

//go:wasmexport wasmilter_init
func initPlugin(n int32) int64 { return 0 }

//go:wasmexport wasmilter_on_headers
func onHeaders(n int32) int64 { return 0 }

func main() {}
