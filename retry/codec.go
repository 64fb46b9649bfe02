package retry

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// The stored form of a record, shared by every backend: JSON with a version
// field, so an operator can read a record with standard tools and a Redis
// script (cjson) could read it too. Times are Unix microseconds: an
// integer a Lua double holds exactly (Unix nanoseconds would not fit in its
// 53 bits), so every time is kept to the microsecond (see ledgerTime).

// recordVersion is the version of the stored form written by this code.
const recordVersion = 1

type storedRecord struct {
	Version       int             `json:"v"`
	ID            string          `json:"id"`
	FirstSeen     int64           `json:"first"`
	LastSeen      int64           `json:"last"`
	State         State           `json:"state"`
	Attempts      int             `json:"attempts"`
	History       []storedAttempt `json:"history,omitempty"`
	Sender        string          `json:"sender"`
	Recipients    []string        `json:"rcpts,omitempty"`
	AuthUser      string          `json:"auth,omitempty"` // additive, like outbox
	Headers       [][2]string     `json:"headers,omitempty"`
	Truncated     bool            `json:"truncated,omitempty"`
	Notices       []storedNotice  `json:"notices,omitempty"`
	Outbox        []storedEntry   `json:"outbox,omitempty"`
	ExpiredAt     int64           `json:"expired_at,omitempty"`
	ExpiredReason *storedReason   `json:"expired,omitempty"`
	UpdatedAt     int64           `json:"updated"`
}

type storedReason struct {
	Code     int    `json:"code,omitempty"`
	Enhanced string `json:"enh,omitempty"`
	Text     string `json:"text,omitempty"`
}

type storedAttempt struct {
	At       int64  `json:"at"`
	QueueID  string `json:"qid,omitempty"`
	ClientIP string `json:"ip,omitempty"`
	Helo     string `json:"helo,omitempty"`
	storedReason
}

type storedNotice struct {
	Step int    `json:"step"`
	At   int64  `json:"at"`
	Kind string `json:"kind"`
}

// storedEntry is an outbox entry. The field came after version 1 was
// defined; it is additive and omitted when empty, so records without an
// outbox are byte-identical to before and need no new version.
type storedEntry struct {
	Step   int          `json:"step"`
	Status NoticeStatus `json:"status"`
	Node   string       `json:"node,omitempty"`
	Until  int64        `json:"until,omitempty"`
	Claims int          `json:"claims,omitempty"`
	Error  string       `json:"err,omitempty"`
	At     int64        `json:"at"`
}

// ledgerTime is a time as the ledger keeps it: UTC, to the microsecond, no
// monotonic reading. Transitions apply it so that a record compares equal
// before and after a round trip through any store.
func ledgerTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// encodeRecord renders rec in the stored form.
func encodeRecord(rec Record) ([]byte, error) {
	s := storedRecord{
		Version: recordVersion, ID: rec.ID.String(),
		FirstSeen: toMicros(rec.FirstSeen), LastSeen: toMicros(rec.LastSeen),
		State: rec.State, Attempts: rec.Attempts,
		Sender: rec.Sender, Recipients: rec.Recipients, AuthUser: rec.AuthUser, Truncated: rec.Truncated,
		ExpiredAt: toMicros(rec.ExpiredAt), UpdatedAt: toMicros(rec.UpdatedAt),
	}
	for _, a := range rec.History {
		s.History = append(s.History, storedAttempt{At: toMicros(a.At), QueueID: a.QueueID,
			ClientIP: a.ClientIP, Helo: a.Helo, storedReason: storedReason(a.Reason)})
	}
	for _, h := range rec.Headers {
		s.Headers = append(s.Headers, [2]string{h.Name, h.Value})
	}
	for _, n := range rec.Notices {
		s.Notices = append(s.Notices, storedNotice{Step: n.Step, At: toMicros(n.At), Kind: n.Kind})
	}
	for _, e := range rec.Outbox {
		s.Outbox = append(s.Outbox, storedEntry{Step: e.Step, Status: e.Status, Node: e.Node,
			Until: toMicros(e.Until), Claims: e.Claims, Error: e.Error, At: toMicros(e.At)})
	}
	if rec.ExpiredReason != (Reason{}) {
		r := storedReason(rec.ExpiredReason)
		s.ExpiredReason = &r
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode record %s: %w", rec.ID, err)
	}
	return b, nil
}

// decodeRecord parses the stored form and checks it is a record this code
// understands, so a damaged or future record is reported, not misread.
func decodeRecord(b []byte) (Record, error) {
	var s storedRecord
	if err := json.Unmarshal(b, &s); err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	if s.Version != recordVersion {
		return Record{}, fmt.Errorf("decode record %s: stored form version %d, this wasmilter reads %d", s.ID, s.Version, recordVersion)
	}
	id, err := stamp.ParseIdentity(s.ID)
	if err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	if !s.State.Valid() {
		return Record{}, fmt.Errorf("decode record %s: unknown state %q", s.ID, s.State)
	}
	rec := Record{
		ID: id, FirstSeen: fromMicros(s.FirstSeen), LastSeen: fromMicros(s.LastSeen),
		State: s.State, Attempts: s.Attempts,
		Sender: s.Sender, Recipients: s.Recipients, AuthUser: s.AuthUser, Truncated: s.Truncated,
		ExpiredAt: fromMicros(s.ExpiredAt), UpdatedAt: fromMicros(s.UpdatedAt),
	}
	for _, a := range s.History {
		rec.History = append(rec.History, Attempt{At: fromMicros(a.At), QueueID: a.QueueID,
			ClientIP: a.ClientIP, Helo: a.Helo, Reason: Reason(a.storedReason)})
	}
	for _, h := range s.Headers {
		rec.Headers = append(rec.Headers, Header{Name: h[0], Value: h[1]})
	}
	for _, n := range s.Notices {
		rec.Notices = append(rec.Notices, Notice{Step: n.Step, At: fromMicros(n.At), Kind: n.Kind})
	}
	for _, e := range s.Outbox {
		if !e.Status.Valid() {
			return Record{}, fmt.Errorf("decode record %s: outbox step %d: unknown status %q", s.ID, e.Step, e.Status)
		}
		rec.Outbox = append(rec.Outbox, OutboxEntry{Step: e.Step, Status: e.Status, Node: e.Node,
			Until: fromMicros(e.Until), Claims: e.Claims, Error: e.Error, At: fromMicros(e.At)})
	}
	if s.ExpiredReason != nil {
		rec.ExpiredReason = Reason(*s.ExpiredReason)
	}
	return rec, nil
}
