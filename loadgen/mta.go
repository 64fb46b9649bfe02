package loadgen

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// Symbol-list stages (SMFIM_*), in which a milter may ask for macros.
const (
	symConnect uint32 = 0
	symHelo    uint32 = 1
	symMail    uint32 = 2
	symRcpt    uint32 = 3
	symData    uint32 = 4
	symEOM     uint32 = 5
	symEOH     uint32 = 6
)

// session is the MTA side of one milter connection (one SMTP session).
type session struct {
	w        *wire
	stats    *workerStats
	offer    Offer
	version  uint32
	actions  gomilter.OptAction
	protocol gomilter.OptProtocol
	symlist  map[uint32]map[string]bool // macros the milter asked for; nil: all
	headers  [][]byte                   // encoded header fields, built at first use
	scratch  []byte
}

func (s *session) has(p gomilter.OptProtocol) bool { return s.protocol&p != 0 }

// negotiate sends the offer and checks the answer as Postfix does: a
// version from 2 to the offered one, no action beyond the offered ones.
func (s *session) negotiate() error {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:], s.offer.Version)
	binary.BigEndian.PutUint32(b[4:], uint32(s.offer.Actions))
	binary.BigEndian.PutUint32(b[8:], uint32(s.offer.Protocol))
	if err := s.w.send(byte(gomilter.CodeOptNeg), b[:]); err != nil {
		return err
	}
	cmd, data, err := s.w.recv("OPTNEG")
	if err != nil {
		return err
	}
	if cmd != byte(gomilter.CodeOptNeg) || len(data) < 12 {
		return protoErr("OPTNEG", "answer %q with %d bytes, want 'O' with at least 12", cmd, len(data))
	}
	s.version = binary.BigEndian.Uint32(data[0:])
	s.actions = gomilter.OptAction(binary.BigEndian.Uint32(data[4:]))
	s.protocol = gomilter.OptProtocol(binary.BigEndian.Uint32(data[8:]))
	if s.version < 2 || s.version > s.offer.Version {
		return protoErr("OPTNEG", "version %d (offered %d; 2 is the lowest)", s.version, s.offer.Version)
	}
	if extra := s.actions &^ s.offer.Actions; extra != 0 {
		return protoErr("OPTNEG", "actions 0x%x beyond the offered 0x%x", uint32(s.actions), uint32(s.offer.Actions))
	}
	return s.parseSymlist(data[12:])
}

// parseSymlist reads SMFIF_SETSYMLIST requests: (stage, "name name...")*.
func (s *session) parseSymlist(data []byte) error {
	for len(data) > 0 {
		if len(data) < 5 {
			return protoErr("OPTNEG", "truncated macro list request")
		}
		stage := binary.BigEndian.Uint32(data)
		list, ok := cString(data[4:])
		if !ok {
			return protoErr("OPTNEG", "macro list request is not NUL-terminated")
		}
		data = data[4+len(list)+1:]
		if s.symlist == nil {
			s.symlist = make(map[uint32]map[string]bool)
		}
		names := make(map[string]bool)
		for _, n := range strings.Fields(list) {
			names[n] = true
		}
		s.symlist[stage] = names
	}
	return nil
}

// macros queues an SMFIC_MACRO packet for an event, with only the macros
// the milter asked for if it sent a list for that stage.
func (s *session) macros(event byte, stage uint32, kv []string) error {
	want := s.symlist[stage]
	b := append(s.scratch[:0], event)
	for i := 0; i+1 < len(kv); i += 2 {
		if want != nil && !want[kv[i]] && !want[strings.Trim(kv[i], "{}")] {
			continue
		}
		b = appendCString(appendCString(b, kv[i]), kv[i+1])
	}
	s.scratch = b
	return s.w.send(byte(gomilter.CodeMacro), b)
}

func appendCString(b []byte, s string) []byte { return append(append(b, s...), 0) }

// event sends its macros, then the event unless the milter negotiated it
// away (skip), then waits for the verdict unless the milter asked for no
// reply (noReply).
func (s *session) event(name string, code byte, skip, noReply gomilter.OptProtocol,
	stage uint32, macros []string, payload ...[]byte) (verdict, error) {
	if err := s.macros(code, stage, macros); err != nil {
		return verdict{}, err
	}
	if skip != 0 && s.has(skip) {
		return verdict{}, nil
	}
	if err := s.w.send(code, payload...); err != nil {
		return verdict{}, err
	}
	if noReply != 0 && s.has(noReply) {
		return verdict{}, nil
	}
	return s.readVerdict(name, false)
}

// open reports the SMTP client's connection and HELO. A non-continue
// verdict here concerns the whole session.
func (s *session) open(c client) (verdict, error) {
	payload := appendCString(nil, c.name)
	payload = append(payload, byte(gomilter.FamilyInet))
	payload = binary.BigEndian.AppendUint16(payload, c.port)
	payload = appendCString(payload, c.addr)
	v, err := s.event("CONNECT", byte(gomilter.CodeConn), gomilter.OptNoConnect, gomilter.OptNoConnReply,
		symConnect, c.connectMacros(), payload)
	if err != nil || v.final() {
		return v, sessionLevel("CONNECT", v, err)
	}
	v, err = s.event("HELO", byte(gomilter.CodeHelo), gomilter.OptNoHelo, gomilter.OptNoHeloReply,
		symHelo, heloMacros(), appendCString(nil, c.name))
	return v, sessionLevel("HELO", v, err)
}

// sessionLevel refuses DISCARD at CONNECT and HELO, as Postfix does.
func sessionLevel(stage string, v verdict, err error) error {
	if err == nil && v.action == ActionDiscard {
		return protoErr(stage, "DISCARD is not allowed at connect or helo")
	}
	return err
}

// transaction sends one message and returns its final action and latency.
// Whatever the outcome, ABORT follows (queued with the next packet), as
// Postfix resets the milter's transaction at the end of each one.
func (s *session) transaction(env envelope, msg *Message, body bool) (string, time.Duration, error) {
	start := time.Now()
	action, err := s.phases(env, msg, body)
	if err != nil {
		return "", 0, err
	}
	elapsed := time.Since(start)
	if err := s.w.send(byte(gomilter.CodeAbort)); err != nil {
		return "", 0, err
	}
	return action, elapsed, nil
}

func (s *session) phases(env envelope, msg *Message, body bool) (string, error) {
	v, err := s.event("MAIL", byte(gomilter.CodeMail), gomilter.OptNoMailFrom, gomilter.OptNoMailReply,
		symMail, env.mailMacros(), appendCString(appendCString(appendCString(nil, "<"+sender+">"), env.size), "BODY=8BITMIME"))
	if err != nil || v.final() {
		return v.action, err
	}
	if v, err = s.recipients(env); err != nil || v.final() {
		return v.action, err
	}
	if s.version >= 4 && s.offer.Version >= 4 { // DATA exists from protocol 4 on
		v, err = s.event("DATA", byte(gomilter.CodeData), gomilter.OptNoData, gomilter.OptNoDataReply,
			symData, env.queue)
		if err != nil || v.final() {
			return v.action, err
		}
	}
	if v, err = s.content(env, msg, body); err != nil || v.final() {
		return v.action, err
	}
	if err := s.macros(byte(gomilter.CodeEOB), symEOM, env.queue); err != nil {
		return "", err
	}
	if err := s.w.send(byte(gomilter.CodeEOB)); err != nil {
		return "", err
	}
	if v, err = s.readVerdict("EOM", true); err != nil {
		return "", err
	}
	if v.skip {
		return "", protoErr("EOM", "SMFIR_SKIP is not an end-of-message verdict")
	}
	if !v.final() {
		return ActionContinue, nil
	}
	return v.action, nil
}

// recipients sends every RCPT. A refused recipient does not end the
// message unless all are refused; ACCEPT and DISCARD end it.
func (s *session) recipients(env envelope) (verdict, error) {
	var accepted int
	var refused verdict
	for _, rcpt := range env.rcpts {
		v, err := s.event("RCPT", byte(gomilter.CodeRcpt), gomilter.OptNoRcptTo, gomilter.OptNoRcptReply,
			symRcpt, env.rcptMacros(rcpt), appendCString(nil, "<"+rcpt+">"))
		if err != nil {
			return verdict{}, err
		}
		switch v.action {
		case "":
			accepted++
		case ActionAccept, ActionDiscard, ActionShutdown:
			return v, nil
		default:
			refused = v
		}
	}
	if accepted == 0 {
		return refused, nil
	}
	return verdict{}, nil
}

// content sends the header fields, end of header and the body chunks.
// Stages negotiated away are not even announced with macros: Postfix does
// not run its header, end-of-header or body callbacks for them.
func (s *session) content(env envelope, msg *Message, body bool) (verdict, error) {
	if !s.has(gomilter.OptNoHeaders) {
		if s.headers == nil {
			s.headers = headerPayloads(msg, s.has(gomilter.OptHeaderLeadingSpace))
		}
		idIndex := msg.messageIDIndex()
		for i, payload := range s.headers {
			if i == idIndex {
				payload = headerPayload(msg.Headers[i].Name, env.messageID, s.has(gomilter.OptHeaderLeadingSpace))
			}
			v, err := s.event("HEADER", byte(gomilter.CodeHeader), 0, gomilter.OptNoHeaderReply,
				symEOH, env.queue, payload)
			if err != nil || v.final() {
				return v, err
			}
		}
	}
	if !s.has(gomilter.OptNoEOH) {
		v, err := s.event("EOH", byte(gomilter.CodeEOH), 0, gomilter.OptNoEOHReply, symEOH, env.queue)
		if err != nil || v.final() {
			return v, err
		}
	}
	if !body || s.has(gomilter.OptNoBody) {
		return verdict{}, nil
	}
	for _, chunk := range msg.bodyChunks() {
		v, err := s.event("BODY", byte(gomilter.CodeBody), 0, gomilter.OptNoBodyReply, symEOM, env.queue, chunk)
		if err != nil || v.final() || v.skip {
			return v, err
		}
	}
	return verdict{}, nil
}

// headerPayloads encodes every header field once per session.
func headerPayloads(msg *Message, leadingSpace bool) [][]byte {
	out := make([][]byte, len(msg.Headers))
	for i, h := range msg.Headers {
		out[i] = headerPayload(h.Name, h.Value, leadingSpace)
	}
	return out
}

// headerPayload is "name\0value\0"; without SMFIP_HDR_LEADSPC the value
// loses one leading space (Sendmail eats one space, not a tab).
func headerPayload(name, value string, leadingSpace bool) []byte {
	if !leadingSpace {
		value = strings.TrimPrefix(value, " ")
	}
	return appendCString(appendCString(nil, name), value)
}

// quit ends the session politely; errors no longer matter then.
func (s *session) quit() {
	_ = s.w.send(byte(gomilter.CodeQuit))
	_ = s.w.flush()
	s.w.close()
}

func (s *session) negotiated() Negotiation {
	return Negotiation{Version: s.version, Actions: fmt.Sprintf("0x%x", uint32(s.actions)),
		Protocol: fmt.Sprintf("0x%x", uint32(s.protocol))}
}
