package abi

// Verdict is what a plugin decides about the message (or, at the rcpt hook,
// about the current recipient).
type Verdict uint8

const (
	// Continue: no objection; later plugins and later stages run.
	Continue Verdict = iota
	// Accept: accept the message; no later plugin is asked about it.
	Accept
	// Reject: refuse permanently (5xx). At the rcpt hook, only this recipient.
	Reject
	// TempFail: refuse temporarily (4xx), the client should retry.
	// At the rcpt hook, only this recipient.
	TempFail
	// Discard: accept the message and silently drop it.
	Discard
	numVerdicts
)

var verdictNames = [numVerdicts]string{"continue", "accept", "reject", "tempfail", "discard"}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "verdict(" + itoa(int(v)) + ")"
}

// Terminal reports whether the verdict ends the chain for the message.
func (v Verdict) Terminal() bool { return v != Continue }

// Reply is an optional SMTP reply that goes with a Reject or TempFail verdict.
type Reply struct {
	Code     int    // 4xx for TempFail, 5xx for Reject
	Enhanced string // RFC 3463 enhanced status code, e.g. "4.7.1"; optional
	Text     string // human-readable text, one line
}

// IsZero reports whether no reply was set.
func (r Reply) IsZero() bool { return r.Code == 0 && r.Enhanced == "" && r.Text == "" }

// ActionKind says what an [Action] does.
type ActionKind uint8

const (
	_ ActionKind = iota
	// AddHeader appends header Name: Value.
	AddHeader
	// InsertHeader inserts Name: Value at position Index (0 = first).
	InsertHeader
	// ChangeHeader replaces the Index-th (1-based) header called Name.
	ChangeHeader
	// DeleteHeader removes the Index-th (1-based) header called Name.
	DeleteHeader
	// Quarantine holds the message in the MTA's hold queue; Value is the reason.
	Quarantine
	// ChangeFrom replaces the envelope sender with Value (ESMTP Args optional).
	ChangeFrom
	// AddRcpt adds envelope recipient Value (ESMTP Args optional).
	AddRcpt
	// DelRcpt removes envelope recipient Value.
	DelRcpt
	// Notify (delay hook only) asks for a delay notice with Value as its text.
	Notify
	// Expire (delay hook only) ends the record; Value, if set, is the text of
	// a final "failed" notice.
	Expire
	numActionKinds
)

var actionNames = [numActionKinds]string{"", "add_header", "insert_header", "change_header",
	"delete_header", "quarantine", "change_from", "add_rcpt", "del_rcpt", "notify", "expire"}

func (k ActionKind) String() string {
	if k > 0 && k < numActionKinds {
		return actionNames[k]
	}
	return "action(" + itoa(int(k)) + ")"
}

// Action is one change a plugin asks for. Which fields matter depends on Kind
// (see the constants). Message changes are gathered over all hooks and
// applied at end of message, in the order plugins returned them.
type Action struct {
	Kind  ActionKind
	Index int
	Name  string
	Value string
	Args  []string
}

// Answer is what a hook returns.
type Answer struct {
	Verdict Verdict
	Reply   Reply
	Actions []Action
}

// Answer field tags.
const (
	tagVerdict  = 1
	tagCode     = 2
	tagEnhanced = 3
	tagText     = 4
	tagAction   = 5
)

// AppendAnswer appends the encoding of a to b.
func AppendAnswer(b []byte, a *Answer) []byte {
	if a.Verdict != Continue {
		b = appendUintField(b, tagVerdict, uint64(a.Verdict))
	}
	if a.Reply.Code != 0 {
		b = appendUintField(b, tagCode, uint64(a.Reply.Code))
	}
	b = appendStringField(b, tagEnhanced, a.Reply.Enhanced)
	b = appendStringField(b, tagText, a.Reply.Text)
	for i := range a.Actions {
		b = appendNested(b, tagAction, func(b []byte) []byte { return appendAction(b, &a.Actions[i]) })
	}
	return b
}

func appendAction(b []byte, ac *Action) []byte {
	b = append(b, byte(ac.Kind))
	b = appendUvarint(b, uint64(ac.Index))
	b = appendString(b, ac.Name)
	b = appendString(b, ac.Value)
	b = appendUvarint(b, uint64(len(ac.Args)))
	for _, s := range ac.Args {
		b = appendString(b, s)
	}
	return b
}

// DecodeAnswer decodes an answer. limits bounds what a (possibly hostile)
// guest can make the host allocate; exceeding them is an error.
func DecodeAnswer(p []byte, limits Limits) (Answer, error) {
	var a Answer
	if len(p) > limits.MaxAnswerBytes {
		return a, errorf("answer is %d bytes, more than the limit of %d", len(p), limits.MaxAnswerBytes)
	}
	r := reader{p: p}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return a, err
		}
		switch tag {
		case tagVerdict:
			v, err := val.uintValue()
			if err != nil {
				return a, err
			}
			if v >= uint64(numVerdicts) {
				return a, errorf("unknown verdict %d", v)
			}
			a.Verdict = Verdict(v)
		case tagCode:
			v, err := val.uintValue()
			if err != nil {
				return a, err
			}
			if v > 999 {
				return a, errorf("reply code %d out of range", v)
			}
			a.Reply.Code = int(v)
		case tagEnhanced:
			a.Reply.Enhanced = string(val.p)
		case tagText:
			a.Reply.Text = string(val.p)
		case tagAction:
			if len(a.Actions) >= limits.MaxActions {
				return a, errorf("more than %d actions", limits.MaxActions)
			}
			ac, err := decodeAction(val, limits)
			if err != nil {
				return a, errorf("action %d: %v", len(a.Actions)+1, err)
			}
			a.Actions = append(a.Actions, ac)
		}
	}
	return a, nil
}

func decodeAction(r reader, limits Limits) (Action, error) {
	var ac Action
	kind, err := r.byte()
	if err != nil {
		return ac, err
	}
	ac.Kind = ActionKind(kind)
	idx, err := r.uvarint()
	if err != nil {
		return ac, err
	}
	if idx > 1<<20 {
		return ac, errorf("header index %d out of range", idx)
	}
	ac.Index = int(idx)
	if ac.Name, err = r.string(); err != nil {
		return ac, err
	}
	if ac.Value, err = r.string(); err != nil {
		return ac, err
	}
	n, err := r.uvarint()
	if err != nil {
		return ac, err
	}
	if n > uint64(limits.MaxArgs) {
		return ac, errorf("%d ESMTP arguments, more than %d", n, limits.MaxArgs)
	}
	for i := uint64(0); i < n; i++ {
		s, err := r.string()
		if err != nil {
			return ac, err
		}
		ac.Args = append(ac.Args, s)
	}
	return ac, nil
}
