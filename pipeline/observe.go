package pipeline

import (
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Observer is told what the pipeline does, for metrics; package metrics
// implements it, and this package stays ignorant of how the numbers are
// exposed. Its methods run on the hot path and must be cheap: the message
// counters are asked for once, at New, so counting a message is one Inc.
type Observer interface {
	// SessionOpened and SessionClosed bracket every SMTP session the MTA
	// brings (one per milter connection, more when the MTA reuses it).
	SessionOpened()
	SessionClosed()
	// MessageCounter returns the counter of messages that ended at stage
	// with verdict (see Stages and Verdicts).
	MessageCounter(stage, verdict string) Counter
	// StoreError counts a failed ledger operation ("get", "defer", "pass",
	// "expire"), where the pipeline logs "retry ledger ... failed".
	StoreError(op string)
}

// Counter counts; a Prometheus counter is one.
type Counter interface{ Inc() }

// stage is where a message's outcome was decided: a hook, or the ledger
// (expired, or the ledger failed) at end of header.
type stage uint8

const (
	stageConnect stage = iota // the connection was accepted at connect
	stageHelo                 // ... or at HELO
	stageMail
	stageRcpt
	stageHeaders
	stageMessage
	stageLedger
	numStages
)

// Stages names the stages, as metrics label them.
var Stages = [numStages]string{"connect", "helo", "mail", "rcpt", "headers", "message", "ledger"}

// stageOf is the stage of a hook.
func stageOf(h abi.Hook) stage {
	switch h {
	case abi.HookConnect:
		return stageConnect
	case abi.HookHelo:
		return stageHelo
	case abi.HookMail:
		return stageMail
	case abi.HookRcpt:
		return stageRcpt
	case abi.HookHeaders:
		return stageHeaders
	}
	return stageMessage
}

// verdict is how a message ended.
type verdict uint8

const (
	verdictPass     verdict = iota // no plugin decided: the MTA was told continue
	verdictAccept                  // a plugin accepted (or accepted the connection)
	verdictReject                  // a plugin rejected it, or the ledger expired it
	verdictTempFail                // deferred (written to the ledger first)
	verdictDiscard
	verdictAborted // the MTA or the client ended it before any verdict
	numVerdicts
)

// Verdicts names the verdicts, as metrics label them.
var Verdicts = [numVerdicts]string{"pass", "accept", "reject", "tempfail", "discard", "aborted"}

// verdictOf maps a plugin verdict to a message verdict.
func verdictOf(v abi.Verdict) verdict {
	switch v {
	case abi.Accept:
		return verdictAccept
	case abi.Reject:
		return verdictReject
	case abi.TempFail:
		return verdictTempFail
	case abi.Discard:
		return verdictDiscard
	}
	return verdictPass
}

// verdictOfReply maps the final reply of a message no plugin decided.
func verdictOfReply(a milter.Action) verdict {
	switch a {
	case milter.Accept:
		return verdictAccept
	case milter.Reject:
		return verdictReject
	case milter.TempFail:
		return verdictTempFail
	case milter.Discard:
		return verdictDiscard
	}
	return verdictPass
}

// messageCounters are the Observer's counters, resolved once.
type messageCounters [numStages][numVerdicts]Counter

func resolveCounters(o Observer) *messageCounters {
	var c messageCounters
	for s := range numStages {
		for v := range numVerdicts {
			c[s][v] = o.MessageCounter(Stages[s], Verdicts[v])
		}
	}
	return &c
}

// nopObserver is the default: nothing is counted.
type nopObserver struct{}

func (nopObserver) SessionOpened()                        {}
func (nopObserver) SessionClosed()                        {}
func (nopObserver) MessageCounter(string, string) Counter { return nopCounter{} }
func (nopObserver) StoreError(string)                     {}

type nopCounter struct{}

func (nopCounter) Inc() {}
