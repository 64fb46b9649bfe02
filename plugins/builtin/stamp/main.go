//go:build wasip1

// Package stamp is wasmilter's shipped stamping policy, the builtin plugin
// "stamp" (built into the builtins module, plugins/builtin/builtins).
//
// The host mints the stamp (a stable message identity and its first-seen
// time, optionally with an HMAC) and formats the header value, so that every
// node writes the same bytes for the same message. This plugin decides only
// whether and where the header goes, at the message hook:
//
//   - the message carries a valid stamp of ours: nothing to do, a retried
//     message keeps its original stamp and is never stamped twice;
//   - it carries none: add ours;
//   - it carries a header with our name that is not a valid stamp (a forgery
//     or a stamp from a server with another key): remove each bad
//     occurrence, unless remove_forged is false, and add ours.
//
// Config keys ([plugins.config]):
//
//	remove_forged = true      # delete invalid stamp headers (default true)
//	position      = "bottom"  # "bottom" appends our header, "top" inserts it
//	                          # as the first field, like a trace header
package stamp

import (
	"fmt"
	"slices"

	"github.com/wasmilter/wasmilter/sdk"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// policy is the plugin's configuration, set once by Init.
type policy struct {
	removeForged bool
	atTop        bool
}

var pol = policy{removeForged: true}

// Plugin is the stamping policy, for sdk.Register.
func Plugin() sdk.Plugin { return sdk.Plugin{Init: configure, Message: stampMessage} }

func configure(cfg sdk.Config) error {
	pol.removeForged = cfg.Bool("remove_forged", true)
	switch pos := cfg.String("position", "bottom"); pos {
	case "bottom":
		pol.atTop = false
	case "top":
		pol.atTop = true
	default:
		return fmt.Errorf("config key \"position\": %q is not \"top\" or \"bottom\"", pos)
	}
	return nil
}

func stampMessage(m *sdk.Message) sdk.Verdict {
	st, ok := m.Stamp()
	if !ok {
		// Stamping is off on the host or there is no message: nothing to add.
		return sdk.Continue()
	}
	switch st.State {
	case abi.StampCarried:
		return sdk.Continue()
	case abi.StampForged:
		if pol.removeForged {
			deleteOccurrences(m, st.HeaderName, st.Invalid)
		}
	}
	addStamp(m, st)
	return sdk.Continue()
}

// deleteOccurrences deletes the given 1-based occurrences of header name,
// highest first, so each deletion leaves the numbering of the ones still to
// go unchanged whatever the MTA does with the numbering after a delete.
func deleteOccurrences(m *sdk.Message, name string, occurrences []int) {
	desc := slices.Clone(occurrences)
	slices.Sort(desc)
	desc = slices.Compact(desc)
	slices.Reverse(desc)
	for _, n := range desc {
		m.DeleteHeader(name, n)
	}
}

func addStamp(m *sdk.Message, st abi.Stamp) {
	if pol.atTop {
		m.InsertHeader(0, st.HeaderName, st.HeaderValue)
		return
	}
	m.AddHeader(st.HeaderName, st.HeaderValue)
}
