// Package plugins is the WebAssembly plugin host of wasmilter: it compiles
// policy plugins once with wazero, keeps a bounded pool of ready instances
// per plugin, calls their hooks under a deadline and a memory cap, serves
// their host functions, and combines the answers of a chain of plugins into
// one result. It knows no sockets, no milter wire format and no config file
// syntax: the caller hands it a [Spec] per plugin and an [abi.Event] per hook.
//
// # Chain semantics
//
// [Chain.Run] calls a hook on every plugin of the chain that implements it, in
// config order, each with the same encoded event:
//
//   - Verdicts combine in order and the first terminal answer wins. Continue
//     passes to the next plugin; Accept, Reject, TempFail and Discard end the
//     chain for this hook: later plugins are not called.
//   - Actions accumulate in order from every plugin that ran and answered
//     validly, including the plugin whose verdict ended the chain.
//   - Every answer is decoded with [abi.DecodeAnswer] and checked with
//     [abi.Validate]. An invalid answer, a trap, a timeout (the per-call
//     deadline, [Spec.Timeout]), running out of memory ([Spec.MemoryLimit]),
//     the guest exiting, or no instance free before the deadline is a failure
//     of that plugin for this message: its actions are dropped, its instance
//     is discarded and replaced in the background, a log line names plugin,
//     hook, kind and error, and the plugin's [OnError] policy applies:
//     tempfail ends the chain with TempFail and a 451 4.3.0 reply, reject with
//     Reject and a 550 5.7.0 reply, accept with Accept, and continue skips the
//     plugin as if it had answered Continue.
//   - Run never returns an error and never panics; failures are reported in
//     [Result.Failures].
//
// # Sandbox
//
// Plugins with the same module and memory cap share one wazero runtime and
// compiled module (the memory cap is a runtime setting), all runtimes one
// compilation cache; every instance is still its own module with its own
// memory, and host functions serve the calling instance's plugin. WASI is
// present because Go and C guests import it, but with no filesystem or
// arguments, and no environment beyond the Spec's (the builtins' selector);
// the random source is crypto/rand and the clocks are real. Guest stdout and
// stderr become log lines, bounded in length and number per call. There are
// no network functions. The host functions of module "wasmilter" (log, now,
// macro, stamp) check every pointer against guest memory; a bad pointer traps
// the call, never the host.
//
// sdk/ABI.md is the contract plugin authors read; RATIONALE.md in this
// directory explains the design decisions.
package plugins
