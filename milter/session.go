package milter

import (
	"net"

	gomilter "github.com/emersion/go-milter"
)

// Backend creates the Session that handles one MTA connection.
type Backend interface {
	// NewSession is called once per MTA connection, after the MTA's option
	// negotiation packet was read (so c.Version and c.Actions report the
	// MTA's offer until the reply is sent; Needs is asked right after).
	// After SMFIC_QUIT_NC (the MTA reuses the connection for another SMTP
	// session) the previous Session is closed and NewSession is called
	// again on the same Conn; the options negotiated at first stay in force.
	NewSession(c *Conn) Session
}

// Needs says which parts of the SMTP transaction a Session wants. The
// server asks the MTA only for those (SMFIP_NO* bits), which saves a round
// trip per unwanted event.
type Needs struct {
	// Callbacks the session wants. Others are negotiated away when the MTA
	// allows it, else answered "continue" by the server without calling
	// the session.
	Connect, Helo, Mail, Rcpt bool
	// Headers asks for per-header callbacks and EndOfHeaders.
	Headers bool
	// Body asks for body chunks; false negotiates SMFIP_NOBODY.
	Body bool
	// Actions lists the modifications the session may request at end of
	// message. Only those the MTA also offers are negotiated.
	Actions gomilter.OptAction
	// AlwaysContinue lists wanted stages at which the session has nothing
	// to decide: its reply there is always Continue. Over a unix socket the
	// server then asks the MTA not to wait for a reply at those stages
	// (SMFIP_NR_*); the callback is still made. A reply other than Continue
	// at such a stage is dropped with a warning.
	AlwaysContinue Stages
}

// Stages is a set of SMTP stages, for Needs.AlwaysContinue.
type Stages uint8

// The stages a Session may declare it always continues.
const (
	StageConnect Stages = 1 << iota
	StageHelo
	StageMail
	StageRcpt
)

// Session handles the events of one MTA connection. All methods are called
// from the connection's goroutine, one at a time.
//
// Every message the server sees ends with exactly one call of EndOfMessage
// or Abort, also when the session's own reply ended it early (a
// non-continue reply at MAIL, DATA, a header stage or a body chunk, or an
// Accept at RCPT).
type Session interface {
	// Needs is called right after NewSession, before the negotiation reply.
	Needs() Needs
	Connect(ConnInfo) Reply
	Helo(name string) Reply
	// Mail receives the sender without angle brackets; "" is the null sender.
	Mail(from string, args []string) Reply
	// Rcpt receives a recipient without angle brackets. A Reject or
	// TempFail here refuses only this recipient.
	Rcpt(to string, args []string) Reply
	// Header never answers: the server negotiates SMFIP_NR_HDR when the
	// MTA offers it, else it replies continue itself.
	Header(name, value string)
	EndOfHeaders() Reply
	// BodyChunk's chunk is only valid during the call.
	BodyChunk(chunk []byte) Reply
	EndOfMessage() (Reply, []Modification)
	// Abort: the current message ended without EndOfMessage (SMFIC_ABORT,
	// a new MAIL, QUIT_NC, the connection lost mid-message, or the
	// session's own message-ending reply).
	Abort()
	// Close: the connection ended. Always called exactly once per Session.
	Close()
}

// ConnInfo is the SMTP client as the MTA reports it in SMFIC_CONNECT.
type ConnInfo struct {
	Host   string // the client's host name (as resolved by the MTA)
	Family string // "inet", "inet6", "unix" or "unknown"
	Port   int    // 0 for unix and unknown
	Addr   string // IP address or socket path; "" for unknown
}

// Conn describes one MTA connection. Its methods are safe to call from
// Session methods (they run on the connection's goroutine); not from other
// goroutines.
type Conn struct {
	version    uint32
	actions    gomilter.OptAction
	protocol   gomilter.OptProtocol
	remoteAddr net.Addr
	macros     macroSet
}

// Macro returns the value of an MTA macro. The most recent stage that
// defines it wins (end of message, end of headers, data, rcpt, mail, helo,
// connect), like libmilter's smfi_getsymval. "i" and "{i}" are the same
// name. Per-message macros are forgotten when the message ends.
func (c *Conn) Macro(name string) (string, bool) { return c.macros.lookup(name) }

// Version is the negotiated milter protocol version (2 to 6).
func (c *Conn) Version() uint32 { return c.version }

// Actions are the negotiated actions: the modifications the MTA allows.
func (c *Conn) Actions() gomilter.OptAction { return c.actions }

// RemoteAddr is the MTA's end of the milter socket.
func (c *Conn) RemoteAddr() net.Addr { return c.remoteAddr }
