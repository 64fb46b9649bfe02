package milter

import (
	"bytes"

	gomilter "github.com/emersion/go-milter"
)

// macroStage indexes the stages the MTA sends macros for (libmilter keeps
// the same seven slots; macros for any other command code are ignored, as
// libmilter does).
type macroStage int

const (
	macroConnect macroStage = iota
	macroHelo
	macroMail
	macroRcpt
	macroData
	macroEOH
	macroEOM
	macroStages
)

// macroLookupOrder is libmilter's smfi_getsymval order: the most recent
// stage first, so a per-message value shadows a connection-level one.
var macroLookupOrder = [macroStages]macroStage{
	macroEOM, macroEOH, macroData, macroRcpt, macroMail, macroHelo, macroConnect,
}

func macroStageFor(cmd byte) (macroStage, bool) {
	switch gomilter.Code(cmd) {
	case gomilter.CodeConn:
		return macroConnect, true
	case gomilter.CodeHelo:
		return macroHelo, true
	case gomilter.CodeMail:
		return macroMail, true
	case gomilter.CodeRcpt:
		return macroRcpt, true
	case gomilter.CodeData:
		return macroData, true
	case gomilter.CodeEOH:
		return macroEOH, true
	case gomilter.CodeEOB:
		return macroEOM, true
	}
	return 0, false
}

// macroSet keeps each stage's macros as the raw NUL-separated block the MTA
// sent, copied into a buffer that is reused for the life of the connection.
// Storing costs no allocation; a lookup scans a few dozen bytes and
// allocates only the returned string.
type macroSet struct {
	raw     [macroStages][]byte
	present [macroStages]bool
}

// store replaces a stage's macros (a later SMFIC_MACRO for the same stage,
// e.g. the next RCPT, supersedes the earlier one, as in libmilter).
func (m *macroSet) store(stage macroStage, pairs []byte) {
	m.raw[stage] = append(m.raw[stage][:0], pairs...)
	m.present[stage] = true
}

func (m *macroSet) clear(stages ...macroStage) {
	for _, s := range stages {
		m.raw[s] = m.raw[s][:0]
		m.present[s] = false
	}
}

// clearMessage forgets the per-message stages; connect and helo macros stay.
func (m *macroSet) clearMessage() {
	m.clear(macroMail, macroRcpt, macroData, macroEOH, macroEOM)
}

// clearAfterMail forgets the stages that follow MAIL: used when a new MAIL
// arrives while a message is still open, whose own MAIL macros arrived just
// before it and must survive.
func (m *macroSet) clearAfterMail() {
	m.clear(macroRcpt, macroData, macroEOH, macroEOM)
}

func (m *macroSet) clearAll() {
	for s := macroStage(0); s < macroStages; s++ {
		m.clear(s)
	}
}

// lookup finds name ("i" or "{i}" alike) in the most recent stage that
// defines it.
func (m *macroSet) lookup(name string) (string, bool) {
	want := trimBraces([]byte(name))
	for _, s := range macroLookupOrder {
		if !m.present[s] {
			continue
		}
		if v, ok := findMacro(m.raw[s], want); ok {
			return v, true
		}
	}
	return "", false
}

// findMacro scans a NUL-separated name/value block. A trailing name without
// a value is ignored.
func findMacro(block, want []byte) (string, bool) {
	for len(block) > 0 {
		name, rest, ok := bytes.Cut(block, []byte{0})
		if !ok {
			return "", false
		}
		value, rest, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return "", false
		}
		if bytes.Equal(trimBraces(name), want) {
			return string(value), true
		}
		block = rest
	}
	return "", false
}

// trimBraces maps "{name}" to "name": Sendmail spells long macro names with
// braces and single-letter ones without, and callers should not have to
// know which form the MTA used.
func trimBraces(name []byte) []byte {
	if len(name) >= 2 && name[0] == '{' && name[len(name)-1] == '}' {
		return name[1 : len(name)-1]
	}
	return name
}
