package milter

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// phase is where the current message stands. The MTA moves it forward
// only; RCPT, HEADER and BODY may repeat.
type phase uint8

const (
	phaseIdle phase = iota // no message open
	phaseMail
	phaseRcpt
	phaseData
	phaseHeaders
	phaseEOH
	phaseBody
	phaseEOM
)

func (p phase) String() string {
	names := [...]string{"no message", "MAIL", "RCPT", "DATA", "HEADER", "EOH", "BODY", "EOM"}
	if int(p) < len(names) {
		return names[p]
	}
	return "phase?"
}

func (p phase) repeatable() bool { return p == phaseRcpt || p == phaseHeaders || p == phaseBody }

// connHandler runs the protocol state machine of one MTA connection. It
// lives on one goroutine; only nc may be touched by others (to close it).
type connHandler struct {
	nc           net.Conn
	log          *slog.Logger
	backend      Backend
	readTimeout  time.Duration
	writeTimeout time.Duration
	// When the current read and write deadlines were set (see deadline).
	readSetAt, writeSetAt time.Time

	conn    Conn
	in      *packetReader
	out     packetWriter
	session Session
	needs   Needs
	closed  bool // session.Close has been called

	phase phase
	// connectSeen / smtpStarted make a second CONNECT (without QUIT_NC in
	// between) a protocol error.
	connectSeen, smtpStarted bool
	// nextMailMacros: MAIL macros arrived while a message was still open;
	// they belong to the MAIL that follows and must survive its implicit
	// abort of the old message.
	nextMailMacros bool
	// headerNames interns header names: the same few dozen names repeat in
	// every message, so after the first one only values allocate.
	headerNames map[string]string
}

// maxInternedNames bounds headerNames against an MTA sending endless
// distinct names.
const maxInternedNames = 256

func newConnHandler(s *Server, nc net.Conn) *connHandler {
	return &connHandler{
		nc:           nc,
		log:          s.logger().With("remote", remoteString(nc)),
		backend:      s.Backend,
		readTimeout:  durationOr(s.ReadTimeout, defaultReadTimeout),
		writeTimeout: durationOr(s.WriteTimeout, defaultWriteTimeout),
		conn:         Conn{remoteAddr: nc.RemoteAddr()},
		in:           newPacketReader(nc, intOr(s.MaxPacket, defaultMaxPacket)),
		out:          newPacketWriter(),
	}
}

// release returns the pooled buffers. The handler must be done.
func (h *connHandler) release() {
	h.in.release()
	h.out.release()
}

// serve runs the connection until the MTA quits, an error occurs or the
// session panics. The Session is always closed exactly once.
func (h *connHandler) serve() {
	defer h.finishSession()
	defer h.recoverPanic()
	if err := h.negotiate(); err != nil {
		h.logEnd("negotiation", err)
		return
	}
	for {
		cmd, data, err := h.readPacket()
		if err != nil {
			h.logEnd("reading", err)
			return
		}
		quit, err := h.dispatch(cmd, data)
		if err != nil {
			h.logEnd(commandName(cmd), err)
			return
		}
		if quit {
			h.log.Debug("MTA quit")
			return
		}
	}
}

func (h *connHandler) recoverPanic() {
	if v := recover(); v != nil {
		h.log.Error("milter session panicked; closing this connection",
			"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

// finishSession ends an open message and closes the session, each guarded
// so a panic in Abort still lets Close run.
func (h *connHandler) finishSession() {
	if h.session == nil || h.closed {
		return
	}
	if h.phase != phaseIdle {
		h.phase = phaseIdle
		h.safely("Abort", h.session.Abort)
	}
	h.closeSession()
}

func (h *connHandler) closeSession() {
	h.closed = true
	h.safely("Close", h.session.Close)
}

func (h *connHandler) safely(what string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("milter session panicked in "+what,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// logEnd logs why a connection ends: quietly when the MTA hung up or the
// server is shutting down, as a warning when the MTA broke the protocol or
// timed out.
func (h *connHandler) logEnd(during string, err error) {
	var tooLarge *packetTooLargeError
	var proto *protocolError
	switch {
	case errors.Is(err, io.EOF):
		h.log.Debug("MTA closed the connection", "during", during)
	case errors.Is(err, net.ErrClosed):
		h.log.Debug("connection closed by the server", "during", during)
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.log.Warn("milter connection timed out; closing it", "during", during, "error", err)
	case errors.As(err, &tooLarge), errors.As(err, &proto), errors.Is(err, io.ErrUnexpectedEOF):
		h.log.Warn("milter protocol error; closing the connection", "command", during, "error", err)
	default:
		h.log.Warn("milter connection failed", "during", during, "error", err)
	}
}

func (h *connHandler) readPacket() (byte, []byte, error) {
	if err := deadline(h.nc.SetReadDeadline, &h.readSetAt, h.readTimeout); err != nil {
		return 0, nil, fmt.Errorf("setting read deadline: %w", err)
	}
	return h.in.next()
}

// deadline moves a connection deadline to timeout from now, unless the
// one in force was set less than timeout/8 ago: setting a deadline takes
// a lock and a timer update inside the runtime, and an MTA sends dozens
// of packets per message. The limit enforced is thus between 7/8 of
// timeout and timeout.
func deadline(set func(time.Time) error, setAt *time.Time, timeout time.Duration) error {
	now := time.Now()
	if !setAt.IsZero() && now.Sub(*setAt) < timeout/8 {
		return nil
	}
	*setAt = now
	return set(now.Add(timeout))
}

// flush sends everything queued as one write.
func (h *connHandler) flush() error {
	pending := h.out.pending()
	if len(pending) == 0 {
		return nil
	}
	defer h.out.reset()
	if err := deadline(h.nc.SetWriteDeadline, &h.writeSetAt, h.writeTimeout); err != nil {
		return fmt.Errorf("setting write deadline: %w", err)
	}
	if _, err := h.nc.Write(pending); err != nil {
		return fmt.Errorf("writing reply: %w", err)
	}
	return nil
}

// negotiate handles the mandatory first packet, SMFIC_OPTNEG.
func (h *connHandler) negotiate() error {
	cmd, data, err := h.readPacket()
	if err != nil {
		return err
	}
	if gomilter.Code(cmd) != gomilter.CodeOptNeg {
		return protoErrorf("first packet is %s, want OPTNEG", commandName(cmd))
	}
	offer, err := decodeOptneg(data)
	if err != nil {
		return err
	}
	if offer.version < minVersion {
		return protoErrorf("MTA offers protocol version %d; versions %d to %d are supported",
			offer.version, minVersion, maxVersion)
	}
	h.conn.version = min(offer.version, maxVersion)
	h.conn.actions = offer.actions
	if err := h.newSession(); err != nil {
		return err
	}
	result := negotiate(offer, h.needs, quietAllowed(h.nc))
	h.conn.actions = result.actions
	h.conn.protocol = result.protocol
	h.log.Debug("negotiated", "version", result.version,
		"actions", fmt.Sprintf("%#x", uint32(result.actions)),
		"protocol", fmt.Sprintf("%#x", uint32(result.protocol)))
	h.out.optneg(result)
	return h.flush()
}

func (h *connHandler) newSession() error {
	s := h.backend.NewSession(&h.conn)
	if s == nil {
		return errors.New("backend returned a nil Session")
	}
	h.session, h.closed = s, false
	h.needs = s.Needs()
	return nil
}

// dispatch handles one packet after negotiation. quit reports SMFIC_QUIT.
func (h *connHandler) dispatch(cmd byte, data []byte) (quit bool, err error) {
	switch gomilter.Code(cmd) {
	case gomilter.CodeMacro:
		return false, h.onMacro(data)
	case gomilter.CodeConn:
		return false, h.onConnect(data)
	case gomilter.CodeHelo:
		return false, h.onHelo(data)
	case gomilter.CodeMail:
		return false, h.onMail(data)
	case gomilter.CodeRcpt:
		return false, h.onRcpt(data)
	case gomilter.CodeData:
		return false, h.onData()
	case gomilter.CodeHeader:
		return false, h.onHeader(data)
	case gomilter.CodeEOH:
		return false, h.onEndOfHeaders()
	case gomilter.CodeBody:
		return false, h.onBody(data)
	case gomilter.CodeEOB:
		return false, h.onEndOfMessage()
	case gomilter.CodeAbort:
		h.endMessage(true)
		return false, nil
	case cmdUnknown:
		// We ask for SMFIP_NOUNKNOWN; an MTA that cannot honour it still
		// gets the reply it waits for.
		return false, h.answer("UNKNOWN", Reply{}, false)
	case gomilter.CodeQuit:
		return true, nil
	case gomilter.CodeQuitNewConn:
		return false, h.onQuitNewConnection()
	case gomilter.CodeOptNeg:
		return false, protoErrorf("OPTNEG repeated after negotiation")
	}
	return false, protoErrorf("unknown command code %s", commandName(cmd))
}

// answerUnlessQuiet answers an event, unless the MTA was asked not to
// wait for a reply there (nr, an SMFIP_NR_* bit): then it writes nothing.
// A Session that decides something at such a stage (it declared it never
// would, see Needs.AlwaysContinue) cannot be heard; rather than let the
// message through as if it had continued, the connection is closed, and
// the MTA applies its milter_default_action (Postfix: tempfail).
func (h *connHandler) answerUnlessQuiet(stage string, nr gomilter.OptProtocol, r Reply, endsMessage bool) error {
	if h.conn.protocol&nr == 0 {
		return h.answer(stage, r, endsMessage)
	}
	if r.Action != Continue {
		return fmt.Errorf("session answered %s at %s, where the MTA was told to expect no reply (SMFIP_NR); closing the connection so the MTA applies its default action", r.Action, stage)
	}
	return nil
}

// answer queues the reply for one event and sends it. A reply that ends
// the message also ends it here, so the next MAIL starts clean.
func (h *connHandler) answer(stage string, r Reply, endsMessage bool) error {
	h.queueReply(stage, r)
	if err := h.flush(); err != nil {
		return err
	}
	if endsMessage {
		h.endMessage(true)
	}
	return nil
}

func (h *connHandler) queueReply(stage string, r Reply) {
	enc, err := encodeReply(r)
	if err != nil {
		h.log.Warn("invalid milter reply", "stage", stage, "error", err)
	}
	h.out.reply(enc)
}

// enterPhase checks that a message event may come now and advances the
// message to p. Without MAIL (negotiated away), the first message event
// opens the message.
func (h *connHandler) enterPhase(p phase, cmd byte) error {
	switch {
	case h.phase == phaseIdle:
		if h.conn.protocol&gomilter.OptNoMailFrom == 0 {
			return protoErrorf("%s before MAIL", commandName(cmd))
		}
	case p < h.phase || (p == h.phase && !p.repeatable()):
		return protoErrorf("%s after %s", commandName(cmd), h.phase)
	}
	h.phase = p
	h.smtpStarted = true
	return nil
}

// endMessage closes the current message: Abort (unless it ended with
// EndOfMessage) and forget its macros.
func (h *connHandler) endMessage(abort bool) {
	if h.phase == phaseIdle {
		return
	}
	h.phase = phaseIdle
	if abort {
		h.session.Abort()
	}
	if h.nextMailMacros {
		h.conn.macros.clearAfterMail()
	} else {
		h.conn.macros.clearMessage()
	}
	h.nextMailMacros = false
}

func (h *connHandler) onMacro(data []byte) error {
	code, pairs, err := decodeMacros(data)
	if err != nil {
		return err
	}
	stage, ok := macroStageFor(code)
	if !ok {
		return nil
	}
	h.conn.macros.store(stage, pairs)
	if stage == macroMail && h.phase != phaseIdle {
		h.nextMailMacros = true
	}
	return nil
}

func (h *connHandler) onConnect(data []byte) error {
	if h.connectSeen || h.smtpStarted || h.phase != phaseIdle {
		return protoErrorf("CONNECT repeated without QUIT_NC")
	}
	info, err := decodeConnect(data)
	if err != nil {
		return err
	}
	h.connectSeen = true
	var r Reply
	if h.needs.Connect {
		r = h.session.Connect(info)
	}
	return h.answerUnlessQuiet("CONNECT", gomilter.OptNoConnReply, r, false)
}

// onHelo: SMTP allows EHLO inside a transaction (it resets it, RFC 5321
// section 4.1.4), so an open message is aborted rather than treated as an
// error.
func (h *connHandler) onHelo(data []byte) error {
	name, err := decodeHelo(data)
	if err != nil {
		return err
	}
	h.endMessage(true)
	h.smtpStarted = true
	var r Reply
	if h.needs.Helo {
		r = h.session.Helo(name)
	}
	return h.answerUnlessQuiet("HELO", gomilter.OptNoHeloReply, r, false)
}

func (h *connHandler) onMail(data []byte) error {
	if err := checkCStrings(data, "MAIL"); err != nil {
		return err
	}
	h.endMessage(true)
	h.phase, h.smtpStarted = phaseMail, true
	var r Reply
	if h.needs.Mail {
		from, args, err := decodeEnvelope(data, "MAIL")
		if err != nil {
			return err
		}
		r = h.session.Mail(from, args)
	}
	return h.answerUnlessQuiet("MAIL", gomilter.OptNoMailReply, r, r.Action != Continue)
}

// onRcpt: a Reject, TempFail or Discard at RCPT concerns that recipient (or
// is applied by the MTA later); only Accept ends the message, as in
// libmilter.
func (h *connHandler) onRcpt(data []byte) error {
	if err := checkCStrings(data, "RCPT"); err != nil {
		return err
	}
	if err := h.enterPhase(phaseRcpt, byte(gomilter.CodeRcpt)); err != nil {
		return err
	}
	var r Reply
	if h.needs.Rcpt {
		to, args, err := decodeEnvelope(data, "RCPT")
		if err != nil {
			return err
		}
		r = h.session.Rcpt(to, args)
	}
	return h.answerUnlessQuiet("RCPT", gomilter.OptNoRcptReply, r, r.Action == Accept)
}

// onData answers when the MTA sends DATA although SMFIP_NODATA was asked
// for (an MTA that does not offer it): Postfix sends the DATA macros and
// event without waiting, and a milter that stays silent there
// (SMFIP_NR_DATA) meets the delayed ACK of the MTA's socket and stalls
// each message by ~40 ms.
func (h *connHandler) onData() error {
	if err := h.enterPhase(phaseData, byte(gomilter.CodeData)); err != nil {
		return err
	}
	return h.answer("DATA", Reply{}, false)
}

func (h *connHandler) onHeader(data []byte) error {
	name, value, err := decodeHeader(data)
	if err != nil {
		return err
	}
	if err := h.enterPhase(phaseHeaders, byte(gomilter.CodeHeader)); err != nil {
		return err
	}
	if h.needs.Headers {
		h.session.Header(h.internName(name), string(value))
	}
	if h.conn.protocol&gomilter.OptNoHeaderReply != 0 {
		return nil
	}
	return h.answer("HEADER", Reply{}, false)
}

func (h *connHandler) onEndOfHeaders() error {
	if err := h.enterPhase(phaseEOH, byte(gomilter.CodeEOH)); err != nil {
		return err
	}
	var r Reply
	if h.needs.Headers {
		r = h.session.EndOfHeaders()
	}
	return h.answer("EOH", r, r.Action != Continue)
}

func (h *connHandler) onBody(chunk []byte) error {
	if err := h.enterPhase(phaseBody, byte(gomilter.CodeBody)); err != nil {
		return err
	}
	var r Reply
	if h.needs.Body {
		r = h.session.BodyChunk(chunk)
	}
	return h.answer("BODY", r, r.Action != Continue)
}

// onEndOfMessage sends all modifications and the final reply in one write.
// When end of header was negotiated away although the Session wants it
// (SMFIP_NOEOH, see negotiate), the Session's EndOfHeaders runs first, and
// a reply there that ends the message is the final reply.
func (h *connHandler) onEndOfMessage() error {
	eohPending := h.eohSkipped()
	if err := h.enterPhase(phaseEOM, byte(gomilter.CodeEOB)); err != nil {
		return err
	}
	if eohPending {
		if r := h.session.EndOfHeaders(); r.Action != Continue {
			return h.answer("EOM", r, true)
		}
	}
	r, mods := h.session.EndOfMessage()
	for _, m := range mods {
		h.queueModification(m)
	}
	h.queueReply("EOM", r)
	err := h.flush()
	h.endMessage(false)
	return err
}

// eohSkipped reports whether the message reaching end of message still
// owes the Session its EndOfHeaders: SMFIP_NOEOH was negotiated for a
// Session that wants headers (and no body, so nothing came in between).
func (h *connHandler) eohSkipped() bool {
	return h.needs.Headers && h.conn.protocol&gomilter.OptNoEOH != 0 && h.phase < phaseEOH
}

// quietAllowed: the per-stage no-reply bits are used only on unix
// sockets; see noReplyBits for why not over TCP.
func quietAllowed(nc net.Conn) bool {
	return nc.LocalAddr().Network() == "unix"
}

// queueModification drops, with a warning, what the MTA did not allow or
// what would corrupt the message; the rest of the batch still goes out.
func (h *connHandler) queueModification(m Modification) {
	if err := m.validate(); err != nil {
		h.log.Warn("dropping invalid modification", "kind", m.Kind.String(), "name", m.Name, "error", err)
		return
	}
	if need := m.requiredAction(); h.conn.actions&need == 0 {
		h.log.Warn("dropping modification the MTA did not allow",
			"kind", m.Kind.String(), "name", m.Name,
			"needs_action", fmt.Sprintf("%#x", uint32(need)),
			"negotiated", fmt.Sprintf("%#x", uint32(h.conn.actions)))
		return
	}
	h.out.modification(m)
}

// onQuitNewConnection: SMFIC_QUIT_NC ends this SMTP session but keeps the
// milter connection for the next one, which starts again with CONNECT
// (libmilter: xxfi_close, then the connect state). The negotiated options
// stay; the session is replaced.
func (h *connHandler) onQuitNewConnection() error {
	h.endMessage(true)
	h.closeSession()
	h.conn.macros.clearAll()
	h.connectSeen, h.smtpStarted, h.nextMailMacros = false, false, false
	return h.newSession()
}

func (h *connHandler) internName(name []byte) string {
	if s, ok := h.headerNames[string(name)]; ok { // no allocation for the lookup
		return s
	}
	s := string(name)
	if h.headerNames == nil {
		h.headerNames = make(map[string]string)
	}
	if len(h.headerNames) < maxInternedNames {
		h.headerNames[s] = s
	}
	return s
}

// checkCStrings validates an argv-style payload without decoding it: at
// least one string, and NUL-terminated.
func checkCStrings(data []byte, what string) error {
	if len(data) == 0 || data[len(data)-1] != 0 {
		return protoErrorf("%s payload is empty or not NUL-terminated", what)
	}
	return nil
}

func remoteString(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" {
		return a.String()
	}
	return nc.LocalAddr().Network()
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func intOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
