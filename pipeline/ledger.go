package pipeline

import (
	"errors"
	"time"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/stamp"
)

// storeFailureReply is answered when the ledger cannot be read and the
// policy is not to let messages through unrecorded.
var storeFailureReply = milter.Reply{Action: milter.TempFail, Code: 451, Enhanced: "4.3.0",
	Text: "Temporary failure in mail policy, try again later"}

// identify settles the message's identity, looks it up in the ledger, applies
// the ledger's arrival decision and mints the stamp. done means the message
// is answered here (expired, or the ledger failed and the policy defers).
//
// A message carrying a valid stamp of ours is known by that stamp: it was
// stamped on an earlier pass (or another node), and recipients or headers
// may have changed since.
func (s *session) identify() (milter.Reply, bool) {
	fields := s.fields()
	found := s.p.stamps.Inspect(fields)
	s.msg.identity = stamp.Derive(stamp.Facts{Sender: s.ev.From, Recipients: s.recipients(), Headers: fields})
	now := s.p.clock()
	s.msg.firstSeen = now.UTC().Truncate(time.Second)
	if found.Valid {
		s.msg.identity, s.msg.firstSeen = found.Stamp.ID, found.Stamp.FirstSeen
	}
	s.parseProperties()
	if reply, done := s.consultLedger(now); done {
		return reply, true
	}
	s.mintStamp(found)
	return milter.Reply{}, false
}

// consultLedger reads the message's record, if any, and decides on it.
func (s *session) consultLedger(now time.Time) (milter.Reply, bool) {
	if s.p.ledger == nil {
		return milter.Reply{}, false
	}
	rec, err := s.p.ledger.Get(s.ctx, s.msg.identity)
	switch {
	case errors.Is(err, retry.ErrNotFound):
		return milter.Reply{}, false
	case err != nil:
		s.p.obs.StoreError("get")
		s.p.log.Error("retry ledger lookup failed", s.logArgs("err", err, "on_store_error", s.storeErrorPolicy())...)
		if s.p.acceptOnError {
			return milter.Reply{}, false
		}
		s.decide(abi.TempFail, "retry ledger (on_store_error)", stageLedger, storeFailureReply)
		return storeFailureReply, true
	}
	s.msg.known = true
	s.msg.firstSeen = rec.FirstSeen.UTC().Truncate(time.Second)
	s.msg.record, s.msg.hasRecord = RecordView(rec), true
	decision := s.p.policy.OnArrival(rec, now)
	s.msg.arrival = decision.Action
	if decision.Action != retry.Expire {
		return milter.Reply{}, false
	}
	return s.expire(decision.Reply, now), true
}

// expire ends a message that was deferred for too long with a permanent
// answer: never silence, never an endless loop of 4xx.
func (s *session) expire(r retry.Reason, now time.Time) milter.Reply {
	if _, err := s.p.ledger.Expire(s.ctx, s.msg.identity, now, r); err != nil && !errors.Is(err, retry.ErrTransition) {
		s.p.obs.StoreError("expire")
		s.p.log.Error("retry ledger: recording the expiry failed", s.logArgs("err", err)...)
	}
	reply := milter.Reply{Action: milter.Reject, Code: r.Code, Enhanced: r.Enhanced, Text: r.Text}
	s.decide(abi.Reject, "retry ledger (max_age)", stageLedger, reply)
	return reply
}

// recordDeferral writes the deferral to the ledger before it is answered.
// It reports whether the deferral stands: false when the ledger failed and
// the policy is to let the message through unrecorded. Without a ledger, or
// before the identity is known (MAIL, RCPT), nothing is recorded.
func (s *session) recordDeferral(reply milter.Reply) bool {
	if s.p.ledger == nil || s.msg.identity.IsZero() || s.msg.recorded {
		return true
	}
	_, err := s.p.ledger.Defer(s.ctx, retry.Deferral{
		ID:         s.msg.identity,
		FirstSeen:  s.msg.firstSeen,
		Attempt:    s.attempt(retry.Reason{Code: reply.Code, Enhanced: reply.Enhanced, Text: reply.Text}),
		Sender:     s.ev.From,
		Recipients: s.recipients(),
		AuthUser:   s.authUser(),
		Headers:    s.ledgerHeaders(),
	})
	if err != nil {
		s.p.obs.StoreError("defer")
		s.p.log.Error("retry ledger: recording a deferral failed",
			s.logArgs("err", err, "on_store_error", s.storeErrorPolicy())...)
		return !s.p.acceptOnError
	}
	s.msg.recorded = true
	return true
}

// recordPass marks a known message's record as passed: it made it.
func (s *session) recordPass() {
	if s.p.ledger == nil || !s.msg.known {
		return
	}
	if _, err := s.p.ledger.Pass(s.ctx, s.msg.identity, s.attempt(retry.Reason{})); err != nil {
		s.p.obs.StoreError("pass")
		s.p.log.Warn("retry ledger: recording a pass failed", s.logArgs("err", err)...)
	}
}

func (s *session) attempt(r retry.Reason) retry.Attempt {
	return retry.Attempt{At: s.p.clock(), QueueID: s.ev.QueueID, ClientIP: s.ev.ClientAddr, Helo: s.ev.Helo, Reason: r}
}

func (s *session) ledgerHeaders() []retry.Header {
	hs := make([]retry.Header, len(s.ev.Headers))
	for i, h := range s.ev.Headers {
		hs[i] = retry.Header{Name: h.Name, Value: h.Value}
	}
	return hs
}

func (s *session) storeErrorPolicy() string {
	if s.p.acceptOnError {
		return "accept"
	}
	return "tempfail"
}

// authUser is the login name the client authenticated with, if it did,
// bounded as the ledger keeps it; a longer one is not a login name the
// MTA checked and is left out rather than failing the deferral.
func (s *session) authUser() string {
	name, _ := s.macros.Macro(authMacro)
	if !retry.ValidAuthUser(name) {
		return ""
	}
	return name
}

// authMacro holds the SASL login name; Postfix and Sendmail set it only
// for a client that authenticated.
const authMacro = "{auth_authen}"

// RecordView is a ledger record as plugins see it (the record host
// function); the retry sweeper's delay hook sees the same view.
func RecordView(r retry.Record) abi.Record {
	out := abi.Record{ID: r.ID.String(), FirstSeen: r.FirstSeen.Unix(), LastSeen: r.LastSeen.Unix(),
		Attempts: r.Attempts, State: string(r.State), Notices: r.DelayStepsDone()}
	if last := r.LastNotice(); !last.IsZero() {
		out.LastNotice = last.Unix()
	}
	if n := len(r.History); n > 0 {
		last := r.History[n-1].Reason
		out.LastReason = abi.Reply{Code: last.Code, Enhanced: last.Enhanced, Text: last.Text}
	}
	return out
}
