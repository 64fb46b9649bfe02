package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/plugins"
	"github.com/wasmilter/wasmilter/retry"
	"github.com/wasmilter/wasmilter/sdk/abi"
	"github.com/wasmilter/wasmilter/stamp"
)

// session is one MTA connection. The milter server calls it from one
// goroutine, so it needs no locking.
type session struct {
	p      *Pipeline
	macros Macros
	hooks  abi.HookSet
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	ev           abi.Event // connection fields persist; message fields are reset per message
	connAccepted bool      // a plugin accepted at connect or helo: no policy for this connection
	connStage    stage     // where the connection was accepted
	msg          message
}

// message is the state of the message in progress.
type message struct {
	open      bool
	accepted  bool // a plugin accepted: later hooks are skipped, gathered changes still apply
	ended     bool // a terminal verdict was answered; nothing more runs for this message
	stamp     abi.Stamp
	hasStamp  bool
	record    abi.Record
	hasRecord bool
	props     abi.Properties
	hasProps  bool
	identity  stamp.Identity // the ledger key: the carried stamp's id, or the derived identity
	firstSeen time.Time      // the stamp's time
	known     bool           // the ledger has a record of this identity
	arrival   retry.Action   // what the record's state says about this arrival
	recorded  bool           // a deferral of this attempt is in the ledger
	actions   []abi.Action
	decidedBy string
	verdict   abi.Verdict
	decided   bool         // verdict, decidedBy, decidedAt and reply are set: the message's outcome is known
	decidedAt stage        // where it was decided
	reply     milter.Reply // what the MTA was told when it was decided
	phase     stage        // the last stage the message reached
	limits    limitState   // the message counted against the limits (limits.go)
	failures  int
}

func (p *Pipeline) newSession(m Macros) *session {
	ctx, cancel := context.WithCancel(context.Background())
	p.obs.SessionOpened()
	return &session{p: p, macros: m, hooks: p.chain.Hooks(), ctx: ctx, cancel: cancel}
}

// Needs implements milter.Session.
func (s *session) Needs() milter.Needs {
	return milter.Needs{
		// The client's address and HELO name are in every event and every
		// ledger attempt, whatever the plugins hook; they come once per
		// connection. The envelope and the header are needed too: identity
		// and stamp are derived from them.
		Connect: true,
		Helo:    true,
		Mail:    true,
		Rcpt:    true,
		Headers: true,
		Body:    s.p.chain.Features()&abi.FeatureBody != 0,
		Actions: wantedActions,
		// Only a plugin's hook answers at these stages; without one the
		// MTA need not wait for us there.
		AlwaysContinue: s.stagesWithoutHooks(),
	}
}

// hookStages are the hooks that answer before end of header, each with the
// milter stage it answers at.
var hookStages = [...]struct {
	hook  abi.Hook
	stage milter.Stages
}{
	{abi.HookConnect, milter.StageConnect},
	{abi.HookHelo, milter.StageHelo},
	{abi.HookMail, milter.StageMail},
	{abi.HookRcpt, milter.StageRcpt},
}

func (s *session) stagesWithoutHooks() milter.Stages {
	var quiet milter.Stages
	for _, st := range hookStages {
		if !s.hooks.Has(st.hook) {
			quiet |= st.stage
		}
	}
	return quiet
}

// Macro and Stamp implement plugins.Env for the host functions.
func (s *session) Macro(name string) (string, bool) { return s.macros.Macro(name) }

func (s *session) Stamp() (abi.Stamp, bool) { return s.msg.stamp, s.msg.hasStamp }

// Record implements plugins.Env: the message's ledger record, once known.
func (s *session) Record() (abi.Record, bool) { return s.msg.record, s.msg.hasRecord }

// Properties implements plugins.Env: the header properties, from end of header.
func (s *session) Properties() (abi.Properties, bool) { return s.msg.props, s.msg.hasProps }

// Connect implements milter.Session.
func (s *session) Connect(info milter.ConnInfo) milter.Reply {
	s.ev.ClientHost, s.ev.ClientAddr, s.ev.ClientPort, s.ev.Family = info.Host, info.Addr, info.Port, info.Family
	return s.connectionStage(abi.HookConnect)
}

// Helo implements milter.Session.
func (s *session) Helo(name string) milter.Reply {
	s.ev.Helo = name
	return s.connectionStage(abi.HookHelo)
}

// connectionStage runs a hook that concerns the whole connection.
func (s *session) connectionStage(h abi.Hook) milter.Reply {
	if s.connAccepted || !s.hooks.Has(h) {
		return milter.Reply{}
	}
	res := s.run(h)
	if res.Verdict == abi.Accept {
		s.connAccepted, s.connStage = true, stageOf(h)
	}
	return toReply(res.Verdict, res.Reply)
}

// Mail implements milter.Session: a new message begins.
func (s *session) Mail(from string, args []string) milter.Reply {
	s.resetMessage()
	s.msg.open, s.msg.phase = true, stageMail
	s.ev.From, s.ev.FromArgs = from, append(s.ev.FromArgs[:0], args...)
	s.learnQueueID()
	return s.messageStage(abi.HookMail)
}

// Rcpt implements milter.Session. A reject or tempfail here refuses only
// this recipient, which then takes no part in the message's identity.
func (s *session) Rcpt(to string, args []string) milter.Reply {
	s.msg.phase = stageRcpt
	s.learnQueueID()
	s.ev.Rcpts = append(s.ev.Rcpts, abi.Recipient{Addr: to, Args: append([]string(nil), args...)})
	if s.msg.ended || s.msg.accepted || s.connAccepted || !s.hooks.Has(abi.HookRcpt) {
		return milter.Reply{}
	}
	res := s.run(abi.HookRcpt)
	switch res.Verdict {
	case abi.Reject, abi.TempFail:
		s.ev.Rcpts = s.ev.Rcpts[:len(s.ev.Rcpts)-1]
		return toReply(res.Verdict, res.Reply)
	}
	return s.settle(res)
}

// Header implements milter.Session.
func (s *session) Header(name, value string) {
	if !s.admitHeader(name, value) {
		return
	}
	s.ev.Headers = append(s.ev.Headers, abi.Header{Name: name, Value: value})
}

// EndOfHeaders implements milter.Session: the identity is known now, so
// the ledger is consulted and the stamp minted before any plugin sees the
// whole header.
func (s *session) EndOfHeaders() milter.Reply {
	s.msg.phase = stageHeaders
	s.learnQueueID()
	if reply, done := s.headerLimit(); done {
		return reply
	}
	if reply, done := s.identify(); done {
		s.msg.ended = true
		return reply
	}
	return s.messageStage(abi.HookHeaders)
}

// BodyChunk implements milter.Session: the body is counted against its
// limit (it is sent only when a plugin reads it). No ABI-1 plugin reads
// its bytes yet.
func (s *session) BodyChunk(chunk []byte) milter.Reply { return s.bodyLimit(len(chunk)) }

// EndOfMessage implements milter.Session: the last hook runs and every
// gathered change goes out with the final reply.
func (s *session) EndOfMessage() (milter.Reply, []milter.Modification) {
	s.msg.phase = stageMessage
	reply := s.messageStage(abi.HookMessage)
	if s.msg.accepted && reply.Action == milter.Continue {
		reply.Action = milter.Accept
	}
	var mods []milter.Modification
	if reply.Action == milter.Continue || reply.Action == milter.Accept {
		if s.msg.arrival == retry.Hold {
			s.msg.actions = append(s.msg.actions, abi.Action{Kind: abi.Quarantine, Value: "held by wasmilter (wasmilter queue show " + s.msg.identity.String() + ")"})
		}
		mods = toModifications(s.msg.actions)
		s.recordPass()
	}
	s.finish(reply, len(mods))
	s.resetMessage()
	return reply, mods
}

// Abort implements milter.Session. The milter server calls it for a
// message its own reply ended (a reject, a deferral, an accept without
// changes) as well as for one the MTA gave up.
func (s *session) Abort() {
	if s.msg.open {
		s.finish(s.msg.reply, 0)
	}
	s.resetMessage()
}

// Close implements milter.Session.
func (s *session) Close() {
	s.cancel()
	s.Abort()
	s.p.obs.SessionClosed()
}

// learnQueueID takes the MTA's queue ID (macro i) once the MTA has one.
// Postfix assigns it only at the first accepted recipient by default
// (smtpd_delay_open_until_valid_rcpt) and sends it again with RCPT, DATA
// and end of header, so MAIL alone would often miss it.
func (s *session) learnQueueID() {
	if s.ev.QueueID == "" {
		s.ev.QueueID, _ = s.macros.Macro("i")
	}
}

// messageStage runs a message hook unless the message is already decided.
func (s *session) messageStage(h abi.Hook) milter.Reply {
	if s.msg.ended || s.msg.accepted || s.connAccepted || !s.hooks.Has(h) {
		return milter.Reply{}
	}
	return s.settle(s.run(h))
}

// settle records a message-level result and answers the MTA. An accept
// with changes still to apply is answered "continue" so that the MTA comes
// back at end of message, where the changes can be sent. A tempfail is
// written to the ledger before it is answered.
func (s *session) settle(res plugins.Result) milter.Reply {
	s.msg.actions = append(s.msg.actions, res.Actions...)
	if res.Verdict == abi.TempFail && s.msg.arrival == retry.Pass {
		s.p.log.Info("released by the administrator: deferral not applied", s.logArgs("deferred_by", res.DecidedBy)...)
		return milter.Reply{}
	}
	switch res.Verdict {
	case abi.Continue:
		return milter.Reply{}
	case abi.Accept:
		s.msg.accepted = true
		reply := milter.Reply{Action: milter.Accept}
		s.decide(abi.Accept, res.DecidedBy, stageOf(s.ev.Hook), reply)
		if len(s.msg.actions) > 0 {
			return milter.Reply{}
		}
		return reply
	}
	reply := toReply(res.Verdict, res.Reply)
	if res.Verdict == abi.TempFail && !s.recordDeferral(reply) {
		return milter.Reply{} // on_store_error = "accept": let it through unrecorded
	}
	s.msg.ended = true
	s.decide(res.Verdict, res.DecidedBy, stageOf(s.ev.Hook), reply)
	return reply
}

// decide records the message's outcome, for its log line and metrics.
func (s *session) decide(v abi.Verdict, by string, at stage, reply milter.Reply) {
	s.msg.verdict, s.msg.decidedBy, s.msg.decidedAt, s.msg.reply, s.msg.decided = v, by, at, reply, true
}

// run calls the chain for hook h with the event as it stands.
func (s *session) run(h abi.Hook) plugins.Result {
	s.ev.Hook = h
	s.ev.Now = s.p.clock().UnixNano()
	res := s.p.chain.Run(s.ctx, h, &s.ev, s)
	s.msg.failures += len(res.Failures)
	return res
}

// mintStamp finds the stamp the message carries or mints a new one from the
// identity and first-seen time identify settled on.
func (s *session) mintStamp(found stamp.Found) {
	st := abi.Stamp{HeaderName: s.p.stamps.Header(), Invalid: found.Invalid}
	if found.Valid {
		st.State, st.ID, st.FirstSeen, st.HeaderValue = abi.StampCarried, found.Stamp.ID.String(),
			found.Stamp.FirstSeen.Unix(), found.Value
		s.msg.stamp, s.msg.hasStamp = st, true
		return
	}
	minted := stamp.Stamp{ID: s.msg.identity, FirstSeen: s.msg.firstSeen}
	st.State, st.ID, st.FirstSeen, st.HeaderValue = abi.StampNew, minted.ID.String(), minted.FirstSeen.Unix(),
		s.p.stamps.Format(minted)
	if len(found.Invalid) > 0 {
		st.State = abi.StampForged
		s.p.log.Warn("message carries stamp headers that are not ours",
			s.logArgs("occurrences", found.Invalid, "errors", errors.Join(found.Errors...))...)
	}
	s.msg.stamp, s.msg.hasStamp = st, true
}

func (s *session) fields() []stamp.Field {
	fields := make([]stamp.Field, len(s.ev.Headers))
	for i, h := range s.ev.Headers {
		fields[i] = stamp.Field{Name: h.Name, Value: h.Value}
	}
	return fields
}

func (s *session) recipients() []string {
	rcpts := make([]string, len(s.ev.Rcpts))
	for i, r := range s.ev.Rcpts {
		rcpts[i] = r.Addr
	}
	return rcpts
}

func (s *session) resetMessage() {
	ev := &s.ev
	ev.From, ev.FromArgs, ev.QueueID = "", ev.FromArgs[:0], ""
	clear(ev.Rcpts) // drop references to the old strings before reuse
	ev.Rcpts = ev.Rcpts[:0]
	clear(ev.Headers)
	ev.Headers = ev.Headers[:0]
	clear(s.msg.actions)
	s.msg = message{actions: s.msg.actions[:0]}
}

// finish counts the message's outcome and logs it: at INFO when it is a
// decision an admin cares about (a reject, a deferral, a discard, an
// expiry, a message an admin released or held), at WARN when a plugin
// failed, and otherwise at DEBUG, since a line per passing message costs
// throughput. The arguments are built only when the line is logged.
func (s *session) finish(reply milter.Reply, changes int) {
	st, v := s.outcome(reply)
	s.p.counters[st][v].Inc()
	level := slog.LevelDebug
	switch {
	case s.msg.failures > 0:
		level = slog.LevelWarn
	case v == verdictReject || v == verdictTempFail || v == verdictDiscard,
		s.msg.known, s.msg.arrival == retry.Pass, s.msg.arrival == retry.Hold:
		level = slog.LevelInfo
	}
	if !s.p.log.Enabled(s.ctx, level) {
		return
	}
	s.p.log.Log(s.ctx, level, "message", s.logArgs(
		"stage", Stages[st], "verdict", Verdicts[v], "action", reply.Action.String(),
		"decided_by", s.msg.decidedBy, "known", s.msg.known, "arrival", s.msg.arrival.String(),
		"recorded", s.msg.recorded, "stamp_state", s.msg.stamp.State.String(), "from", s.ev.From,
		"rcpts", len(s.ev.Rcpts), "changes", changes, "plugin_failures", s.msg.failures)...)
}

// outcome is where and how the message ended.
func (s *session) outcome(reply milter.Reply) (stage, verdict) {
	switch {
	case s.connAccepted:
		return s.connStage, verdictAccept
	case s.msg.decided:
		return s.msg.decidedAt, verdictOf(s.msg.verdict)
	case s.msg.phase == stageMessage:
		return stageMessage, verdictOfReply(reply.Action)
	}
	return s.msg.phase, verdictAborted
}

// logArgs are the attributes that name the message in every line about it
// (the MTA's queue ID, the identity and the stamp, once known), then more.
func (s *session) logArgs(more ...any) []any {
	args := make([]any, 0, 6+len(more))
	args = append(args, "queue_id", s.ev.QueueID)
	if !s.msg.identity.IsZero() {
		args = append(args, "identity", s.msg.identity.String())
	}
	if s.msg.hasStamp {
		args = append(args, "stamp", s.msg.stamp.HeaderValue)
	}
	return append(args, more...)
}

// LogAttrs implements plugins.LogContext: the plugin host's lines about
// this message's calls carry the same attributes.
func (s *session) LogAttrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 3)
	if s.ev.QueueID != "" {
		attrs = append(attrs, slog.String("queue_id", s.ev.QueueID))
	}
	if !s.msg.identity.IsZero() {
		attrs = append(attrs, slog.String("identity", s.msg.identity.String()))
	}
	if s.msg.hasStamp {
		attrs = append(attrs, slog.String("stamp", s.msg.stamp.HeaderValue))
	}
	return attrs
}
