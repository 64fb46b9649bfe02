package notify

import (
	"strings"

	"github.com/wasmilter/wasmilter/cache"
	"github.com/wasmilter/wasmilter/retry"
)

// refusal returns why no notice may be sent about rec whatever the policy
// says, or "" when one may. These are the host's guards: a policy, the
// shipped one or an admin's own, cannot make wasmilter a source of
// backscatter or of mail loops.
func refusal(rec retry.Record, stampHeader string) string {
	if rec.Sender == "" || rec.Sender == "<>" {
		return "null sender" // RFC 3461 §6.2: never a notice about a notice
	}
	if local, _, _ := strings.Cut(rec.Sender, "@"); strings.EqualFold(local, "mailer-daemon") {
		return "sender is a MAILER-DAEMON" // a bounce sent with a real address
	}
	if len(rec.Recipients) == 0 {
		return "no recipients to report on"
	}
	return automatic(properties(rec, stampHeader))
}

// automatic returns why a message was made by a machine, or "".
func automatic(p *cache.Properties) string {
	switch {
	case p.IsDeliveryReport || p.ContentType == "multipart/report":
		return "message is a report (" + p.ContentType + ")"
	case p.AutoSubmitted != "" && p.AutoSubmitted != "no":
		return "message is Auto-Submitted: " + p.AutoSubmitted // RFC 3834 §5
	}
	return ""
}

// properties parses the record's header the way the pipeline parses a
// message's header, so the guards and the policy see the same properties.
func properties(rec retry.Record, stampHeader string) *cache.Properties {
	fields := make([]cache.Field, len(rec.Headers))
	for i, h := range rec.Headers {
		fields[i] = cache.Field{Name: h.Name, Value: h.Value}
	}
	return cache.Parse(fields, cache.ParseOptions{StampHeader: stampHeader})
}
