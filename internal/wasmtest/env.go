package wasmtest

import "github.com/wasmilter/wasmilter/sdk/abi"

// Env is a fixed per-message environment for calling plugins in tests: it
// has the methods of the plugin host's Env (plugins.Env), without this
// package importing the host, which would make the host's own tests an
// import cycle.
type Env struct {
	Macros    map[string]string // MTA macros by name
	MsgStamp  *abi.Stamp        // the message's stamp; nil means none
	MsgRecord *abi.Record       // the message's ledger record; nil means none
	MsgProps  *abi.Properties   // the message's header properties; nil means none
}

// Record returns the message's ledger record, false when MsgRecord is nil.
func (e Env) Record() (abi.Record, bool) {
	if e.MsgRecord == nil {
		return abi.Record{}, false
	}
	return *e.MsgRecord, true
}

// Properties returns the message's properties, false when MsgProps is nil.
func (e Env) Properties() (abi.Properties, bool) {
	if e.MsgProps == nil {
		return abi.Properties{}, false
	}
	return *e.MsgProps, true
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
