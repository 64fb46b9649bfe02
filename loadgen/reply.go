package loadgen

import (
	"bytes"
	"encoding/binary"

	gomilter "github.com/emersion/go-milter"
)

// Final actions, as counted in Result.Actions. A custom SMFIR_REPLYCODE is
// counted by its class, so a plugin's "550 5.7.1 ..." and a plain reject
// stay apart.
const (
	ActionAccept   = "accept"   // SMFIR_ACCEPT
	ActionContinue = "continue" // SMFIR_CONTINUE at end of message: the MTA accepts
	ActionReject   = "reject"   // SMFIR_REJECT
	ActionTempFail = "tempfail" // SMFIR_TEMPFAIL
	ActionDiscard  = "discard"  // SMFIR_DISCARD
	ActionReply4xx = "reply-4xx"
	ActionReply5xx = "reply-5xx"
	ActionShutdown = "shutdown" // SMFIR_SHUTDOWN: the milter ends the SMTP session
)

// Modification kinds, as counted in Result.Modifications.
const (
	ModAddHeader    = "add_header"
	ModInsertHeader = "insert_header"
	ModChangeHeader = "change_header"
	ModDeleteHeader = "delete_header" // SMFIR_CHGHEADER with an empty value
	ModAddRcpt      = "add_rcpt"
	ModDelRcpt      = "del_rcpt"
	ModChangeFrom   = "change_from"
	ModReplaceBody  = "replace_body" // counted per packet
	ModQuarantine   = "quarantine"
)

// Reply codes that go-milter does not name.
const (
	replyProgress   = 'p' // SMFIR_PROGRESS
	replyShutdown   = '4' // SMFIR_SHUTDOWN
	replyAddRcptPar = '2' // SMFIR_ADDRCPT_PAR
)

// verdict is the milter's answer to one event.
type verdict struct {
	action string // "" for continue, else one of the Action* constants
	skip   bool   // SMFIR_SKIP: send no more body chunks
}

func (v verdict) final() bool { return v.action != "" }

// readVerdict reads the reply to one event: progress packets are skipped,
// quarantine is counted wherever it comes (Postfix takes it at any stage),
// and modifications are taken only at end of message (eom).
func (s *session) readVerdict(stage string, eom bool) (verdict, error) {
	for {
		cmd, data, err := s.w.recv(stage)
		if err != nil {
			return verdict{}, err
		}
		switch cmd {
		case replyProgress:
			if err := noData(stage, cmd, data); err != nil {
				return verdict{}, err
			}
			continue
		case byte(gomilter.ActQuarantine):
			if err := s.modification(stage, cmd, data); err != nil {
				return verdict{}, err
			}
			continue
		}
		if isModification(cmd) {
			if !eom {
				return verdict{}, protoErr(stage, "modification %q outside end of message", cmd)
			}
			if err := s.modification(stage, cmd, data); err != nil {
				return verdict{}, err
			}
			continue
		}
		return decideVerdict(stage, cmd, data)
	}
}

func decideVerdict(stage string, cmd byte, data []byte) (verdict, error) {
	var action string
	switch gomilter.ActionCode(cmd) {
	case gomilter.ActContinue:
	case gomilter.ActAccept:
		action = ActionAccept
	case gomilter.ActReject:
		action = ActionReject
	case gomilter.ActTempFail:
		action = ActionTempFail
	case gomilter.ActDiscard:
		action = ActionDiscard
	case gomilter.ActSkip:
		return verdict{skip: true}, noData(stage, cmd, data)
	case gomilter.ActReplyCode:
		return replyCode(stage, data)
	default:
		if cmd == replyShutdown {
			return verdict{action: ActionShutdown}, noData(stage, cmd, data)
		}
		return verdict{}, protoErr(stage, "unknown reply %q (0x%02x)", cmd, cmd)
	}
	return verdict{action: action}, noData(stage, cmd, data)
}

// noData: a bare reply followed by bytes is a broken milter (Postfix
// drops it with "reply ... was followed by N data bytes").
func noData(stage string, cmd byte, data []byte) error {
	if len(data) != 0 {
		return protoErr(stage, "reply %q carries %d unexpected data bytes", cmd, len(data))
	}
	return nil
}

// replyCode checks an SMFIR_REPLYCODE text the way Postfix does: "4" or
// "5", two digits, a space or dash, and an enhanced code of the same class
// if there is one.
func replyCode(stage string, data []byte) (verdict, error) {
	text, ok := cString(data)
	if !ok || len(text) < 4 {
		return verdict{}, protoErr(stage, "malformed reply code %q", data)
	}
	if (text[0] != '4' && text[0] != '5') || !isDigit(text[1]) || !isDigit(text[2]) ||
		(text[3] != ' ' && text[3] != '-') ||
		(len(text) > 4 && isDigit(text[4]) && text[4] != text[0]) {
		return verdict{}, protoErr(stage, "malformed reply code %q", text)
	}
	if text[0] == '4' {
		return verdict{action: ActionReply4xx}, nil
	}
	return verdict{action: ActionReply5xx}, nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// cString returns data up to its terminating NUL; ok is false without one.
func cString(data []byte) (string, bool) {
	i := bytes.IndexByte(data, 0)
	if i < 0 {
		return "", false
	}
	return string(data[:i]), true
}

func isModification(cmd byte) bool {
	switch gomilter.ModifyActCode(cmd) {
	case gomilter.ActAddHeader, gomilter.ActInsertHeader, gomilter.ActChangeHeader,
		gomilter.ActAddRcpt, gomilter.ActDelRcpt, gomilter.ActChangeFrom,
		gomilter.ActReplBody, gomilter.ActQuarantine:
		return true
	}
	return cmd == replyAddRcptPar
}

// modification validates one modification request against its format and
// the negotiated actions, and counts it.
func (s *session) modification(stage string, cmd byte, data []byte) error {
	kind, need, err := parseModification(cmd, data)
	if err != nil {
		return protoErr(stage, "modification %q: %v", cmd, err)
	}
	if s.actions&need == 0 {
		return protoErr(stage, "modification %s without the negotiated action 0x%x (negotiated 0x%x)", kind, uint32(need), uint32(s.actions))
	}
	s.stats.mods[kind]++
	return nil
}

type formatError string

func (e formatError) Error() string { return string(e) }

// parseModification checks the payload layout and names the kind and the
// action bit it needs.
func parseModification(cmd byte, data []byte) (string, gomilter.OptAction, error) {
	switch gomilter.ModifyActCode(cmd) {
	case gomilter.ActAddHeader:
		return ModAddHeader, gomilter.OptAddHeader, headerPair(data)
	case gomilter.ActInsertHeader, gomilter.ActChangeHeader:
		if len(data) < 4 {
			return "", 0, formatError("missing header index")
		}
		index := binary.BigEndian.Uint32(data)
		if err := headerPair(data[4:]); err != nil {
			return "", 0, err
		}
		if cmd == byte(gomilter.ActInsertHeader) {
			return ModInsertHeader, gomilter.OptAddHeader, nil
		}
		if int32(index) < 0 {
			return "", 0, formatError("negative header index")
		}
		if value := data[4+bytes.IndexByte(data[4:], 0)+1:]; len(value) == 1 {
			return ModDeleteHeader, gomilter.OptChangeHeader, nil
		}
		return ModChangeHeader, gomilter.OptChangeHeader, nil
	case gomilter.ActAddRcpt:
		return ModAddRcpt, gomilter.OptAddRcpt, cStrings(data, 1, 1)
	case gomilter.ActDelRcpt:
		return ModDelRcpt, gomilter.OptRemoveRcpt, cStrings(data, 1, 1)
	case gomilter.ActChangeFrom:
		return ModChangeFrom, gomilter.OptChangeFrom, cStrings(data, 1, 2)
	case gomilter.ActReplBody:
		return ModReplaceBody, gomilter.OptChangeBody, nil
	case gomilter.ActQuarantine:
		return ModQuarantine, gomilter.OptQuarantine, cStrings(data, 1, 1)
	}
	if cmd == replyAddRcptPar {
		return ModAddRcpt, gomilter.OptAddRcptWithArgs, cStrings(data, 1, 2)
	}
	return "", 0, formatError("unknown modification")
}

// headerPair checks "name\0value\0" with a non-empty name.
func headerPair(data []byte) error {
	if err := cStrings(data, 2, 2); err != nil {
		return err
	}
	if data[0] == 0 {
		return formatError("empty header name")
	}
	return nil
}

// cStrings checks that data is min to max NUL-terminated strings.
func cStrings(data []byte, min, max int) error {
	if len(data) == 0 || data[len(data)-1] != 0 {
		return formatError("payload is not NUL-terminated")
	}
	n := bytes.Count(data, []byte{0})
	if n < min || n > max {
		return formatError("wrong number of strings in payload")
	}
	return nil
}
