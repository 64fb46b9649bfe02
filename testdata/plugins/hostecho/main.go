//go:build wasip1

// Command hostecho is a test guest that calls the record, properties and
// key/value host functions at the message hook and echoes what it got in
// headers: X-Record (id, state, attempts, first seen, last reason code),
// X-Props (subject, hop count, delivery report), X-Counter (a per-plugin
// counter incremented once per message), X-KV (a value written then read).
package main

import (
	"fmt"
	"time"

	"github.com/wasmilter/wasmilter/sdk"
)

func main() {}

func init() {
	sdk.Register(sdk.Plugin{Message: func(m *sdk.Message) sdk.Verdict {
		if rec, ok := m.Record(); ok {
			m.AddHeader("X-Record", fmt.Sprintf("%s %s %d %d %d", rec.ID, rec.State, rec.Attempts, rec.FirstSeen, rec.LastReason.Code))
		} else {
			m.AddHeader("X-Record", "absent")
		}
		if p, ok := m.Properties(); ok {
			m.AddHeader("X-Props", fmt.Sprintf("%s|%d|%v", p.Subject, p.ReceivedCount, p.IsDeliveryReport))
		} else {
			m.AddHeader("X-Props", "absent")
		}
		n, err := sdk.KVIncr("messages", 1, time.Hour)
		m.AddHeader("X-Counter", fmt.Sprintf("%d %v", n, err))
		if err := sdk.KVSet("last-queue-id", []byte(m.QueueID()), 0); err != nil {
			m.AddHeader("X-KV", "set: "+err.Error())
		} else if v, ok := sdk.KVGet("last-queue-id"); ok {
			m.AddHeader("X-KV", string(v))
		} else {
			m.AddHeader("X-KV", "lost")
		}
		return sdk.Continue()
	}})
}
