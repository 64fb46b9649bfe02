package wasmtest

import "github.com/wasmilter/wasmilter/sdk/abi"

// Env is a fixed per-message environment for calling plugins in tests: it
// has the methods of the plugin host's Env (plugins.Env), without this
// package importing the host, which would make the host's own tests an
// import cycle.
type Env struct {
	Macros   map[string]string // MTA macros by name
	MsgStamp *abi.Stamp        // the message's stamp; nil means none
}

// Macro returns an MTA macro.
func (e Env) Macro(name string) (string, bool) {
	v, ok := e.Macros[name]
	return v, ok
}

// Stamp returns the message's stamp, false when MsgStamp is nil.
func (e Env) Stamp() (abi.Stamp, bool) {
	if e.MsgStamp == nil {
		return abi.Stamp{}, false
	}
	return *e.MsgStamp, true
}
