package sdk

import (
	"fmt"
	"time"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// Header is one header field as the MTA sent it.
type Header = abi.Header

// Recipient is an envelope recipient with its ESMTP arguments.
type Recipient = abi.Recipient

// Client describes the SMTP client's connection.
type Client struct {
	Host   string // reverse DNS name as the MTA reports it, or "[ip]"
	Addr   string // IP address, or socket path for a local client
	Port   int
	Family string // "inet", "inet6", "unix" or "unknown"
}

// Message is what a handler sees during one hook call: everything known about
// the connection and the message so far, plus the actions it queues. It is
// valid only during the call; do not keep it.
type Message struct {
	ev      abi.Event // the envelope; Headers is always nil, see headers
	headers Headers
	actions []abi.Action

	stamp      abi.Stamp
	stampKnown bool // stamp holds the host's answer for this call
	stampOK    bool
}

// headerIndex is the backing array of every call's header spans, reused so
// indexing the headers allocates nothing once it has grown.
var headerIndex []headerSpan

// currentCall numbers hook calls; a Headers view records the call it
// belongs to and refuses to be used in another.
var currentCall uint64

// callMessage is the Message of every hook call, reused: a Message is valid
// only during its call, and a fresh one per call was a ~400-byte allocation
// with pointers, which a Go guest pays for dearly (see decode.go).
var callMessage Message

// newMessage decodes the encoded event raw, which must stay unchanged until
// the call ends, into a new Message.
func newMessage(raw []byte) (*Message, error) {
	m := &Message{}
	return m, m.decode(raw)
}

// reuseMessage is newMessage for a hook call: it decodes into callMessage,
// keeping the backing array of its actions (the previous call's answer was
// encoded before that call returned).
func reuseMessage(raw []byte) (*Message, error) {
	m := &callMessage
	actions := m.actions[:0]
	clear(m.actions) // drop the previous call's strings for the collector
	*m = Message{actions: actions}
	return m, m.decode(raw)
}

func (m *Message) decode(raw []byte) error {
	spans, err := decodeInto(raw, &m.ev, headerIndex[:0])
	headerIndex = spans
	if err != nil {
		return err
	}
	m.headers = Headers{raw: raw, spans: spans, call: currentCall}
	return nil
}

// Hook returns the hook being called.
func (m *Message) Hook() abi.Hook { return m.ev.Hook }

// Now returns the host's clock as of this call: the event's time, which
// the host sets when it calls the hook (for the delay hook, the sweeper's
// clock at this record's visit). Always use it instead of time.Now: the
// host may replay traffic on a simulated clock (`wasmilter replay -at`),
// and the sandbox's own clock is not the server's.
func (m *Message) Now() time.Time {
	if m.ev.Now != 0 {
		return time.Unix(0, m.ev.Now)
	}
	return time.Unix(0, host.now())
}

// Client returns the SMTP client's connection details.
func (m *Message) Client() Client {
	return Client{Host: m.ev.ClientHost, Addr: m.ev.ClientAddr, Port: m.ev.ClientPort, Family: m.ev.Family}
}

// Helo returns the HELO/EHLO name, "" before the helo hook.
func (m *Message) Helo() string { return m.ev.Helo }

// QueueID returns the MTA's queue ID, "" until the MTA assigned one.
func (m *Message) QueueID() string { return m.ev.QueueID }

// From returns the envelope sender without angle brackets; "" is both the
// null sender <> and "not known yet" (before the mail hook).
func (m *Message) From() string { return m.ev.From }

// FromArgs returns the ESMTP arguments of MAIL FROM.
func (m *Message) FromArgs() []string { return m.ev.FromArgs }

// Rcpts returns the envelope recipients accepted so far; at the rcpt hook
// the last one is the recipient being decided about.
func (m *Message) Rcpts() []Recipient { return m.ev.Rcpts }

// Rcpt returns the recipient being decided about at the rcpt hook (the last
// one given), or a zero Recipient when there is none.
func (m *Message) Rcpt() Recipient {
	if len(m.ev.Rcpts) == 0 {
		return Recipient{}
	}
	return m.ev.Rcpts[len(m.ev.Rcpts)-1]
}

// Headers returns the message's header fields, empty before the headers hook.
// The view is valid only during the call.
func (m *Message) Headers() Headers { return m.headers }

// Macro returns an MTA macro (e.g. "j", "{auth_authen}"), asking the host.
// ok is false when the MTA did not send it.
func (m *Message) Macro(name string) (value string, ok bool) { return hostMacro(name) }

// Record returns the message's retry-ledger record: when it was first
// seen, how many attempts came before this one, what the last deferral
// answered. ok is false when the message was never deferred. A greylisting
// policy keyed on the message, not the client, is built on it.
func (m *Message) Record() (rec abi.Record, ok bool) {
	rec, ok, err := hostRecord()
	if err != nil {
		m.Logf(LogError, "sdk: %v", err)
	}
	return rec, ok
}

// Properties returns the header properties the host parsed once for the
// message (decoded Subject, From address, Date, hop count, whether it is a
// delivery report, ...). ok is false before the headers hook.
func (m *Message) Properties() (props abi.Properties, ok bool) {
	props, ok, err := hostProperties()
	if err != nil {
		m.Logf(LogError, "sdk: %v", err)
	}
	return props, ok
}

// Stamp returns the message's stamp as the host minted or found it. ok is
// false when there is none (outside a message, or stamping is disabled on the
// host). The host is asked once per call; later calls return the same stamp.
func (m *Message) Stamp() (stamp abi.Stamp, ok bool) {
	if !m.stampKnown {
		st, ok, err := hostStamp()
		if err != nil {
			m.Logf(LogError, "sdk: %v", err)
		}
		m.stamp, m.stampOK, m.stampKnown = st, ok, true
	}
	return m.stamp, m.stampOK
}

// Logf writes a line to the server's log, attributed to this plugin.
func (m *Message) Logf(level LogLevel, format string, args ...any) {
	host.log(level, fmt.Sprintf(format, args...))
}

// Actions returns the actions queued so far in this call, in order.
func (m *Message) Actions() []abi.Action { return m.actions }

func (m *Message) queue(a abi.Action) { m.actions = append(m.actions, a) }

// AddHeader appends the header field name: value to the message.
func (m *Message) AddHeader(name, value string) {
	m.queue(abi.Action{Kind: abi.AddHeader, Name: name, Value: value})
}

// InsertHeader inserts name: value at position index (0 = first field).
func (m *Message) InsertHeader(index int, name, value string) {
	m.queue(abi.Action{Kind: abi.InsertHeader, Index: index, Name: name, Value: value})
}

// ChangeHeader replaces the value of the occurrence-th (1-based) field
// called name.
func (m *Message) ChangeHeader(name string, occurrence int, value string) {
	m.queue(abi.Action{Kind: abi.ChangeHeader, Name: name, Index: occurrence, Value: value})
}

// DeleteHeader removes the occurrence-th (1-based) field called name.
func (m *Message) DeleteHeader(name string, occurrence int) {
	m.queue(abi.Action{Kind: abi.DeleteHeader, Name: name, Index: occurrence})
}

// Quarantine holds the message in the MTA's hold queue, giving reason.
func (m *Message) Quarantine(reason string) {
	m.queue(abi.Action{Kind: abi.Quarantine, Value: reason})
}

// ChangeFrom replaces the envelope sender (without angle brackets; "" is the
// null sender) and its ESMTP arguments.
func (m *Message) ChangeFrom(addr string, args ...string) {
	m.queue(abi.Action{Kind: abi.ChangeFrom, Value: addr, Args: args})
}

// AddRcpt adds an envelope recipient (without angle brackets).
func (m *Message) AddRcpt(addr string, args ...string) {
	m.queue(abi.Action{Kind: abi.AddRcpt, Value: addr, Args: args})
}

// DelRcpt removes an envelope recipient (without angle brackets).
func (m *Message) DelRcpt(addr string) {
	m.queue(abi.Action{Kind: abi.DelRcpt, Value: addr})
}

// Notify (delay hook only) asks the host to send the sender a delay notice
// with text as its human-readable part.
func (m *Message) Notify(text string) {
	m.queue(abi.Action{Kind: abi.Notify, Value: text})
}

// Expire (delay hook only) gives up on the held message; a non-empty text is
// the human-readable part of the final "failed" notice.
func (m *Message) Expire(text string) {
	m.queue(abi.Action{Kind: abi.Expire, Value: text})
}

// answer builds the ABI answer for verdict v and the queued actions.
func (m *Message) answer(v Verdict) abi.Answer {
	return abi.Answer{Verdict: v.kind, Reply: v.reply, Actions: m.actions}
}
