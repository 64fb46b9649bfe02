package plugins

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// FailureKind says how a plugin call failed.
type FailureKind int

const (
	// FailureTimeout: the call ran past its deadline and was stopped.
	FailureTimeout FailureKind = iota
	// FailureTrap: the guest trapped (unreachable, bad memory access, a
	// host function refusing a bad pointer, ...).
	FailureTrap
	// FailureOutOfMemory: the guest trapped or exited with its memory at
	// the cap: it needed more than [Spec.MemoryLimit].
	FailureOutOfMemory
	// FailureInvalidAnswer: the answer could not be read, decoded or
	// validated; nothing of it is applied.
	FailureInvalidAnswer
	// FailureUnavailable: no instance became free before the deadline, no
	// new one could be created, or the plugin is closed.
	FailureUnavailable
	// FailureExit: the guest called proc_exit.
	FailureExit
	// FailureCanceled: the caller's context was canceled during the call.
	FailureCanceled
	numFailureKinds
)

var failureKindNames = [numFailureKinds]string{
	"timeout", "trap", "out_of_memory", "invalid_answer", "unavailable", "exit", "canceled",
}

// FailureKinds lists every kind, so metrics can show each one from zero.
func FailureKinds() []FailureKind {
	ks := make([]FailureKind, numFailureKinds)
	for i := range ks {
		ks[i] = FailureKind(i)
	}
	return ks
}

func (k FailureKind) String() string {
	if k >= 0 && k < numFailureKinds {
		return failureKindNames[k]
	}
	return fmt.Sprintf("failure(%d)", int(k))
}

// Failure is one plugin failing one hook call. Err already names the plugin
// and the hook.
type Failure struct {
	Plugin string
	Hook   abi.Hook
	Kind   FailureKind
	Err    error
}

func (f Failure) Error() string { return f.Err.Error() }

// Unwrap lets errors.Is/As look at the cause.
func (f Failure) Unwrap() error { return f.Err }

// errGuestMemory is the panic value of a host function handed a pointer
// outside guest memory; wazero turns it into a trap of that call.
var errGuestMemory = errors.New("pointer outside guest memory")

// errInvalidAnswer wraps every problem with what a guest handed back.
var errInvalidAnswer = errors.New("invalid answer")

// errNoBuffer: wasmilter_buffer could not provide the requested space.
var errNoBuffer = errors.New("wasmilter_buffer returned no space")

// classify maps the error of a guest call to its kind. memoryFull tells
// whether the instance's memory had reached its cap: wazero reports a failed
// memory.grow to the guest, not to the host, and guests answer it with a
// trap or an exit, so a trap at the cap is taken to be running out of memory.
func classify(err error, memoryFull bool) FailureKind {
	var exit *sys.ExitError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return FailureTimeout
	case errors.Is(err, context.Canceled):
		return FailureCanceled
	case errors.Is(err, errInvalidAnswer):
		return FailureInvalidAnswer
	case errors.Is(err, errNoBuffer), memoryFull:
		return FailureOutOfMemory
	case errors.As(err, &exit):
		return FailureExit
	}
	return FailureTrap
}
