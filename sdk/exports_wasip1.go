package sdk

import (
	"unsafe"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// The guest exports of abi.Version 1. Each is a one-line call into the
// platform-independent code in dispatch.go.

//go:wasmexport wasmilter_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport wasmilter_buffer
func exportBuffer(size int32) unsafe.Pointer { return bytesPtr(exchangeBuffer(size)) }

//go:wasmexport wasmilter_init
func exportInit(n int32) int64 { return packAnswer(runInit(n)) }

//go:wasmexport wasmilter_on_connect
func exportConnect(n int32) int64 { return packAnswer(runHook(abi.HookConnect, n)) }

//go:wasmexport wasmilter_on_helo
func exportHelo(n int32) int64 { return packAnswer(runHook(abi.HookHelo, n)) }

//go:wasmexport wasmilter_on_mail
func exportMail(n int32) int64 { return packAnswer(runHook(abi.HookMail, n)) }

//go:wasmexport wasmilter_on_rcpt
func exportRcpt(n int32) int64 { return packAnswer(runHook(abi.HookRcpt, n)) }

//go:wasmexport wasmilter_on_headers
func exportHeaders(n int32) int64 { return packAnswer(runHook(abi.HookHeaders, n)) }

//go:wasmexport wasmilter_on_message
func exportMessage(n int32) int64 { return packAnswer(runHook(abi.HookMessage, n)) }

//go:wasmexport wasmilter_on_delay
func exportDelay(n int32) int64 { return packAnswer(runHook(abi.HookDelay, n)) }

// packAnswer returns ptr<<32|len of b, or 0 for an empty answer.
func packAnswer(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	return int64(uintptr(unsafe.Pointer(&b[0])))<<32 | int64(len(b))
}
