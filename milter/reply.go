package milter

import (
	"fmt"
	"strconv"
	"strings"

	gomilter "github.com/emersion/go-milter"
)

// Action is a Session's verdict at one stage.
type Action int

const (
	Continue Action = iota // go on with the next stage (the zero value)
	Accept                 // accept: no more events for this message (or connection, at connect/helo)
	Reject                 // 5xx: the connection, message or (at RCPT) recipient
	TempFail               // 4xx: the connection, message or (at RCPT) recipient
	Discard                // accept and silently drop the message
)

func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case TempFail:
		return "tempfail"
	case Discard:
		return "discard"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Reply is a Session's answer to one MTA event.
type Reply struct {
	Action Action
	// Code is an optional custom SMTP reply code for Reject (5xx) or
	// TempFail (4xx), sent as SMFIR_REPLYCODE.
	Code int
	// Enhanced is an optional RFC 3463 status code, e.g. "4.7.1". Its class
	// must match Code's first digit. Postfix requires one in a custom
	// reply, so "5.7.1" / "4.7.1" is sent when it is empty.
	Enhanced string
	// Text is one line of reply text. The server escapes '%' as '%%'
	// (libmilter's smfi_setreply rule) and refuses CR, LF and NUL.
	Text string
}

// maxReplyText is libmilter's MAXREPLYLEN: longer texts are refused by
// smfi_setreply, and MTAs are not prepared for them.
const maxReplyText = 980

// isCustom reports whether the reply carries anything beyond its action.
func (r Reply) isCustom() bool { return r.Code != 0 || r.Enhanced != "" || r.Text != "" }

// ModKind selects what a Modification changes.
type ModKind int

const (
	AddHeader    ModKind = iota // append header Name: Value
	InsertHeader                // insert header at Index (0 = first)
	ChangeHeader                // replace the Index-th (1-based) header called Name
	DeleteHeader                // delete the Index-th (1-based) header called Name
	Quarantine                  // quarantine the message; Value is the reason
	ChangeFrom                  // replace the envelope sender with Value (+ Args)
	AddRcpt                     // add envelope recipient Value (+ Args)
	DelRcpt                     // remove envelope recipient Value
)

func (k ModKind) String() string {
	names := [...]string{"AddHeader", "InsertHeader", "ChangeHeader", "DeleteHeader",
		"Quarantine", "ChangeFrom", "AddRcpt", "DelRcpt"}
	if k >= 0 && int(k) < len(names) {
		return names[k]
	}
	return "ModKind(" + strconv.Itoa(int(k)) + ")"
}

// Modification is one change a Session requests at end of message.
type Modification struct {
	Kind ModKind
	// Index: InsertHeader position (0 = first); Change/DeleteHeader
	// 1-based occurrence of Name.
	Index int
	Name  string
	// Value: header value; quarantine reason; address (the server adds
	// the angle brackets).
	Value string
	// Args are ESMTP arguments for ChangeFrom and AddRcpt. AddRcpt with
	// arguments needs the OptAddRcptWithArgs action.
	Args []string
}

// requiredAction is the negotiated action a modification depends on.
func (m Modification) requiredAction() gomilter.OptAction {
	switch m.Kind {
	case AddHeader, InsertHeader:
		return gomilter.OptAddHeader
	case ChangeHeader, DeleteHeader:
		return gomilter.OptChangeHeader
	case Quarantine:
		return gomilter.OptQuarantine
	case ChangeFrom:
		return gomilter.OptChangeFrom
	case AddRcpt:
		if len(m.Args) > 0 {
			return gomilter.OptAddRcptWithArgs
		}
		return gomilter.OptAddRcpt
	case DelRcpt:
		return gomilter.OptRemoveRcpt
	}
	return 0
}

// validate refuses what would corrupt the packet framing or the message:
// NUL anywhere (it ends a C string), line breaks that are not header
// folding, empty or malformed header names, out-of-range indexes.
func (m Modification) validate() error {
	if err := noNUL(m.Name, "name"); err != nil {
		return err
	}
	if err := noNUL(m.Value, "value"); err != nil {
		return err
	}
	for _, a := range m.Args {
		if a == "" || strings.ContainsAny(a, "\x00\r\n ") {
			return fmt.Errorf("ESMTP argument %q is empty or contains NUL, space or a line break", a)
		}
	}
	switch m.Kind {
	case AddHeader, InsertHeader, ChangeHeader, DeleteHeader:
		return m.validateHeader()
	case Quarantine, ChangeFrom, AddRcpt, DelRcpt:
		if strings.ContainsAny(m.Value, "\r\n") {
			return fmt.Errorf("value contains a line break")
		}
		if m.Kind == Quarantine && m.Value == "" {
			return fmt.Errorf("quarantine needs a reason")
		}
		if (m.Kind == AddRcpt || m.Kind == DelRcpt) && m.Value == "" {
			return fmt.Errorf("recipient address is empty")
		}
		return nil
	}
	return fmt.Errorf("unknown modification kind %d", int(m.Kind))
}

func (m Modification) validateHeader() error {
	if err := validHeaderName(m.Name); err != nil {
		return err
	}
	switch m.Kind {
	case InsertHeader:
		if m.Index < 0 {
			return fmt.Errorf("insert index %d is negative", m.Index)
		}
	case ChangeHeader, DeleteHeader:
		if m.Index < 1 {
			return fmt.Errorf("header index %d is not 1-based", m.Index)
		}
	}
	if m.Kind == ChangeHeader && m.Value == "" {
		// An empty value in SMFIR_CHGHEADER means delete; refuse the
		// ambiguity rather than delete a header by accident.
		return fmt.Errorf("change to an empty value would delete the header; use DeleteHeader")
	}
	return validFolding(m.Value)
}

func noNUL(s, what string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains NUL", what)
	}
	return nil
}

// validHeaderName applies RFC 5322 section 2.2: printable ASCII except ':'.
func validHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("header name %q contains %q", name, c)
		}
	}
	return nil
}

// validFolding allows a line break in a header value only as folding: it
// must be followed by a space or tab (RFC 5322 section 2.2.3). Anything
// else would let a value start a new header.
func validFolding(value string) error {
	for i := 0; i < len(value); i++ {
		if value[i] != '\r' && value[i] != '\n' {
			continue
		}
		j := i + 1
		if value[i] == '\r' && j < len(value) && value[j] == '\n' {
			j++
		}
		if j >= len(value) || (value[j] != ' ' && value[j] != '\t') {
			return fmt.Errorf("header value has a line break that is not folding")
		}
		i = j - 1
	}
	return nil
}

// withAngles wraps an address in angle brackets unless it already is.
func withAngles(addr string) string {
	if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
		return addr
	}
	return "<" + addr + ">"
}

// modification appends one modification packet. It assumes validate
// and the action check passed.
func (w *packetWriter) modification(m Modification) {
	switch m.Kind {
	case AddHeader:
		w.strings(byte(gomilter.ActAddHeader), m.Name, m.Value)
	case InsertHeader:
		w.indexedHeader(byte(gomilter.ActInsertHeader), uint32(m.Index), m.Name, m.Value)
	case ChangeHeader:
		w.indexedHeader(byte(gomilter.ActChangeHeader), uint32(m.Index), m.Name, m.Value)
	case DeleteHeader:
		w.indexedHeader(byte(gomilter.ActChangeHeader), uint32(m.Index), m.Name, "")
	case Quarantine:
		w.strings(byte(gomilter.ActQuarantine), m.Value)
	case ChangeFrom:
		w.addressWithArgs(byte(gomilter.ActChangeFrom), m.Value, m.Args)
	case AddRcpt:
		if len(m.Args) > 0 {
			w.addressWithArgs(replyAddRcptPar, m.Value, m.Args)
		} else {
			w.strings(byte(gomilter.ActAddRcpt), withAngles(m.Value))
		}
	case DelRcpt:
		w.strings(byte(gomilter.ActDelRcpt), withAngles(m.Value))
	}
}

// addressWithArgs writes SMFIR_CHGFROM / SMFIR_ADDRCPT_PAR. libmilter's
// smfi_chgfrom and smfi_addrcpt_par send the ESMTP arguments as a single
// space-separated string after the address, and Postfix reads exactly that.
func (w *packetWriter) addressWithArgs(code byte, addr string, args []string) {
	if len(args) == 0 {
		w.strings(code, withAngles(addr))
		return
	}
	w.strings(code, withAngles(addr), strings.Join(args, " "))
}

// replyEncoding is the wire form chosen for a Reply.
type replyEncoding struct {
	code     byte   // simple reply code, used when custom is false
	custom   bool   // send SMFIR_REPLYCODE
	smtp     int    // custom SMTP code
	enhanced string // custom enhanced status
	text     string // custom text, unescaped
}

// encodeReply maps a Reply to its wire form. A custom reply that cannot be
// sent safely is downgraded to the plain verdict and the problem returned
// so the caller can log it; the verdict itself is never lost.
func encodeReply(r Reply) (replyEncoding, error) {
	switch r.Action {
	case Continue:
		return replyEncoding{code: byte(gomilter.ActContinue)}, nil
	case Accept:
		return replyEncoding{code: byte(gomilter.ActAccept)}, nil
	case Discard:
		return replyEncoding{code: byte(gomilter.ActDiscard)}, nil
	case Reject:
		return encodeFailure(r, byte(gomilter.ActReject), 550, "5.7.1")
	case TempFail:
		return encodeFailure(r, byte(gomilter.ActTempFail), 451, "4.7.1")
	}
	return replyEncoding{code: byte(gomilter.ActTempFail)},
		fmt.Errorf("unknown action %d answered as tempfail", int(r.Action))
}

func encodeFailure(r Reply, plain byte, defaultCode int, defaultEnhanced string) (replyEncoding, error) {
	enc := replyEncoding{code: plain}
	if !r.isCustom() {
		return enc, nil
	}
	code := r.Code
	if code == 0 {
		code = defaultCode
	}
	class := byte('0' + defaultCode/100)
	if code/100 != defaultCode/100 {
		return enc, fmt.Errorf("reply code %d does not fit a %s reply (want %cxx); sent without custom text", code, r.Action, class)
	}
	enhanced := r.Enhanced
	if enhanced == "" {
		enhanced = defaultEnhanced
	}
	if !validEnhanced(enhanced, class) {
		return enc, fmt.Errorf("enhanced status %q is not %c.x.y; sent without custom text", enhanced, class)
	}
	if strings.ContainsAny(r.Text, "\r\n\x00") {
		return enc, fmt.Errorf("reply text contains CR, LF or NUL; sent without custom text")
	}
	if len(r.Text) > maxReplyText {
		return enc, fmt.Errorf("reply text is %d bytes, limit %d; sent without custom text", len(r.Text), maxReplyText)
	}
	return replyEncoding{custom: true, smtp: code, enhanced: enhanced, text: r.Text}, nil
}

// validEnhanced checks an RFC 3463 status "class.subject.detail" whose class
// matches the reply code (Postfix refuses a reply whose fifth character
// differs from its first).
func validEnhanced(s string, class byte) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != string(class) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func (w *packetWriter) reply(enc replyEncoding) {
	if enc.custom {
		w.replyCode(enc.smtp, enc.enhanced, enc.text)
		return
	}
	w.simple(enc.code)
}
