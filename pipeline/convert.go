package pipeline

import (
	"github.com/wasmilter/wasmilter/milter"
	"github.com/wasmilter/wasmilter/sdk/abi"
)

// toReply maps a verdict and its optional reply onto the milter reply.
func toReply(v abi.Verdict, r abi.Reply) milter.Reply {
	var a milter.Action
	switch v {
	case abi.Accept:
		a = milter.Accept
	case abi.Reject:
		a = milter.Reject
	case abi.TempFail:
		a = milter.TempFail
	case abi.Discard:
		a = milter.Discard
	default:
		return milter.Reply{}
	}
	return milter.Reply{Action: a, Code: r.Code, Enhanced: r.Enhanced, Text: r.Text}
}

var modKinds = map[abi.ActionKind]milter.ModKind{
	abi.AddHeader:    milter.AddHeader,
	abi.InsertHeader: milter.InsertHeader,
	abi.ChangeHeader: milter.ChangeHeader,
	abi.DeleteHeader: milter.DeleteHeader,
	abi.Quarantine:   milter.Quarantine,
	abi.ChangeFrom:   milter.ChangeFrom,
	abi.AddRcpt:      milter.AddRcpt,
	abi.DelRcpt:      milter.DelRcpt,
}

// toModifications maps validated plugin actions onto milter modifications.
// Actions with no milter equivalent (the delay hook's) never reach here:
// validation allows them only at the delay hook.
func toModifications(actions []abi.Action) []milter.Modification {
	if len(actions) == 0 {
		return nil
	}
	mods := make([]milter.Modification, 0, len(actions))
	for _, a := range actions {
		kind, ok := modKinds[a.Kind]
		if !ok {
			continue
		}
		mods = append(mods, milter.Modification{Kind: kind, Index: a.Index, Name: a.Name, Value: a.Value, Args: a.Args})
	}
	return mods
}
