// Package demo is the newcomer's tour of wasmilter: `make demo` (or
// WASMILTER_DEMO=1 go test -run TestDemo -v ./demo/ -count=1, as root)
// brings up a throwaway Postfix and wasmilter on loopback, sends a message
// and a greylisted one, and narrates what happens: the stamp, the 451, the
// delay notice reaching the sender, and the retry passing with the stamp
// minted at its first attempt. Everything it starts is stopped, and every
// directory it made removed, when it ends, also on Ctrl-C.
//
// The demo is a test so that it can reuse internal/mtatest, whose helpers
// are built on testing's Fatal, Skip and Cleanup: failing a step stops the
// demo and the cleanups still run in order, which a main package would
// have to imitate. CI runs it too (WASMILTER_E2E=1), so it cannot rot.
package demo
