package notify

import (
	"context"
	"errors"
	"time"

	"github.com/wasmilter/wasmilter/pipeline"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// answer is what the delay policy decided: abi.Notify, abi.Expire, or 0
// for nothing, with the notice's text.
type answer struct {
	kind abi.ActionKind
	text string
}

// ask runs the delay hook on rec at now. Expire outweighs notify when a
// policy (or a chain of them) asks for both: a message being given up is
// what its sender must hear about.
func (n *Notifier) ask(ctx context.Context, now time.Time, rec retry.Record) (answer, error) {
	ev := delayEvent(rec, now)
	res := n.opts.Policy.Run(ctx, abi.HookDelay, ev, &delayEnv{rec: rec, stampHeader: n.opts.StampHeader})
	if len(res.Failures) > 0 {
		errs := make([]error, len(res.Failures))
		for i, f := range res.Failures {
			errs[i] = f.Err
		}
		return answer{}, errors.Join(errs...)
	}
	var a answer
	for _, ac := range res.Actions {
		switch {
		case ac.Kind == abi.Expire:
			return answer{kind: abi.Expire, text: ac.Value}, nil
		case ac.Kind == abi.Notify && a.kind == 0:
			a = answer{kind: abi.Notify, text: ac.Value}
		}
	}
	return a, nil
}

// delayEvent is the message as the delay hook sees it: the envelope and
// header the ledger kept, and the client of its latest attempt.
func delayEvent(rec retry.Record, now time.Time) *abi.Event {
	ev := &abi.Event{Now: now.UnixNano(), From: rec.Sender}
	if n := len(rec.History); n > 0 {
		last := rec.History[n-1]
		ev.QueueID, ev.ClientAddr, ev.Helo = last.QueueID, last.ClientIP, last.Helo
	}
	for _, r := range rec.Recipients {
		ev.Rcpts = append(ev.Rcpts, abi.Recipient{Addr: r})
	}
	for _, h := range rec.Headers {
		ev.Headers = append(ev.Headers, abi.Header{Name: h.Name, Value: h.Value})
	}
	return ev
}

// delayEnv answers the host functions during a delay hook call.
type delayEnv struct {
	rec         retry.Record
	stampHeader string
}

// Macro knows the macros the ledger kept: the login name of an
// authenticated sender and the latest queue ID.
func (e *delayEnv) Macro(name string) (string, bool) {
	switch name {
	case "{auth_authen}":
		return e.rec.AuthUser, e.rec.AuthUser != ""
	case "i":
		if n := len(e.rec.History); n > 0 && e.rec.History[n-1].QueueID != "" {
			return e.rec.History[n-1].QueueID, true
		}
	}
	return "", false
}

// Stamp is absent: the sweeper works outside any message in transit; the
// record carries the identity and first-seen time.
func (e *delayEnv) Stamp() (abi.Stamp, bool) { return abi.Stamp{}, false }

func (e *delayEnv) Record() (abi.Record, bool) { return pipeline.RecordView(e.rec), true }

func (e *delayEnv) Properties() (abi.Properties, bool) {
	return pipeline.PropertiesView(properties(e.rec, e.stampHeader)), true
}
