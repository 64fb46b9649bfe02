package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// headerLine is one header field in the replayed result, marked as kept,
// added or removed.
type headerLine struct {
	mark  byte // ' ', '+', '-'
	name  string
	value string
}

// printChanges shows the header after the modifications as a diff against
// the original, then any envelope changes.
func printChanges(w io.Writer, orig []abi.Header, mods []milter.Modification) {
	if len(mods) == 0 {
		fmt.Fprintln(w, "changes: none")
		return
	}
	lines := make([]headerLine, len(orig))
	for i, h := range orig {
		lines[i] = headerLine{' ', h.Name, h.Value}
	}
	var envelope []string
	for _, m := range mods {
		switch m.Kind {
		case milter.AddHeader:
			lines = append(lines, headerLine{'+', m.Name, m.Value})
		case milter.InsertHeader:
			lines = insertAt(lines, m.Index, headerLine{'+', m.Name, m.Value})
		case milter.ChangeHeader, milter.DeleteHeader:
			lines = changeOccurrence(lines, m)
		default:
			envelope = append(envelope, envelopeChange(m))
		}
	}
	fmt.Fprintln(w, "changes:")
	for _, l := range lines {
		if l.mark != ' ' {
			fmt.Fprintf(w, "%c %s: %s\n", l.mark, l.name, strings.ReplaceAll(l.value, "\n", "\n  "))
		}
	}
	for _, e := range envelope {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// insertAt inserts before the index-th live header (0 = first), as the
// milter protocol's insert-header does; removed lines do not count.
func insertAt(lines []headerLine, index int, l headerLine) []headerLine {
	live := 0
	for i := range lines {
		if lines[i].mark == '-' {
			continue
		}
		if live == index {
			return append(lines[:i], append([]headerLine{l}, lines[i:]...)...)
		}
		live++
	}
	return append(lines, l)
}

// changeOccurrence replaces or deletes the Index-th (1-based) live header
// named m.Name; an empty value deletes, as in the milter protocol.
func changeOccurrence(lines []headerLine, m milter.Modification) []headerLine {
	n := 0
	for i := range lines {
		if lines[i].mark == '-' || !strings.EqualFold(lines[i].name, m.Name) {
			continue
		}
		if n++; n != m.Index {
			continue
		}
		old := lines[i]
		lines[i].mark = '-'
		if m.Kind == milter.ChangeHeader && m.Value != "" {
			return append(lines[:i+1], append([]headerLine{{'+', old.name, m.Value}}, lines[i+1:]...)...)
		}
		return lines
	}
	return lines
}

func envelopeChange(m milter.Modification) string {
	args := ""
	if len(m.Args) > 0 {
		args = " " + strings.Join(m.Args, " ")
	}
	switch m.Kind {
	case milter.ChangeFrom:
		return "envelope sender -> <" + m.Value + ">" + args
	case milter.AddRcpt:
		return "recipient added <" + m.Value + ">" + args
	case milter.DelRcpt:
		return "recipient removed <" + m.Value + ">"
	case milter.Quarantine:
		return "quarantined: " + m.Value
	}
	return fmt.Sprintf("change %d", m.Kind)
}
