package notify

import (
	"strings"

	"github.com/wasmilter/wasmilter/dsn"
	"github.com/wasmilter/wasmilter/retry"
)

// Fallback status codes (RFC 3463) when the record's last answer has none
// of the class the action needs.
const (
	statusDelayed = "4.0.0" // other or undefined status, transient
	statusExpired = "5.4.7" // delivery time expired: what the MTA is told too
	statusCleared = "2.0.0"
)

// compose renders step's notice about rec.
func (n *Notifier) compose(rec retry.Record, step int, action dsn.Action, text string) ([]byte, error) {
	host := reportingHost(n.opts.ReportingMTA)
	notice := dsn.Notice{
		ReportingMTA:   n.opts.ReportingMTA,
		From:           n.opts.From,
		To:             rec.Sender,
		ArrivalDate:    rec.FirstSeen,
		HumanText:      text,
		OriginalHeader: originalHeader(rec),
		MessageID:      retry.NoticeMessageID(rec.ID, step, host),
		Date:           n.clock(),
	}
	for _, addr := range rec.Recipients {
		notice.Recipients = append(notice.Recipients, n.recipient(rec, addr, action))
	}
	return dsn.Compose(notice)
}

// recipient is the delivery-status group of one recipient.
func (n *Notifier) recipient(rec retry.Record, addr string, action dsn.Action) dsn.Recipient {
	r := dsn.Recipient{Address: addr, Action: action, LastAttempt: rec.LastSeen}
	last, known := lastReason(rec)
	if known {
		r.Diagnostic = dsn.SMTPDiagnostic(last.Code, last.Enhanced, last.Text)
	}
	switch action {
	case dsn.Delayed:
		r.Status = statusOfClass(last.Enhanced, '4', statusDelayed)
		r.WillRetryUntil = n.opts.Retry.RetryUntil(rec)
	case dsn.Failed:
		r.Status = statusExpired
	default:
		r.Status, r.Diagnostic = statusCleared, ""
	}
	return r
}

// lastReason is the answer of the record's latest attempt that had one.
func lastReason(rec retry.Record) (retry.Reason, bool) {
	for i := len(rec.History) - 1; i >= 0; i-- {
		if r := rec.History[i].Reason; r.Code != 0 {
			return r, true
		}
	}
	return retry.Reason{}, false
}

// statusOfClass is enhanced when it is of the class, else fallback.
func statusOfClass(enhanced string, class byte, fallback string) string {
	if len(enhanced) > 2 && enhanced[0] == class && enhanced[1] == '.' {
		return enhanced
	}
	return fallback
}

func originalHeader(rec retry.Record) []dsn.Header {
	hs := make([]dsn.Header, len(rec.Headers))
	for i, h := range rec.Headers {
		hs[i] = dsn.Header{Name: h.Name, Value: h.Value}
	}
	return hs
}

// reportingHost is the host name in a Reporting-MTA value ("dns; mx").
func reportingHost(mta string) string {
	if _, host, ok := strings.Cut(mta, ";"); ok {
		return strings.TrimSpace(host)
	}
	return strings.TrimSpace(mta)
}
