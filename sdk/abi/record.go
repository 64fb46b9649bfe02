package abi

// Record is a message's retry-ledger record as plugins see it: the answer
// of the record host function. Times are Unix seconds.
type Record struct {
	ID         string // the message identity (the stamp's id)
	FirstSeen  int64  // when the identity was first seen: the stamp's time
	LastSeen   int64  // the previous attempt
	Attempts   int    // attempts before this one
	State      string // "deferred", "released", "passed", "expired", "held"
	LastReason Reply  // the answer the last deferral got
	// Notices is how many of the delay policy's steps are done: notices
	// sent, or refused for good, or suppressed by the host's rate limit.
	// The next step of a policy is Notices+1 (its index Notices).
	Notices    int
	LastNotice int64 // when the latest notice was sent; 0 when none was
}

const (
	tagRecordID       = 1
	tagRecordFirst    = 2
	tagRecordLast     = 3
	tagRecordAttempts = 4
	tagRecordState    = 5
	tagRecordCode     = 6
	tagRecordEnhanced = 7
	tagRecordText     = 8
	tagRecordNotices  = 9
	tagRecordLastNote = 10
)

// AppendRecord appends the encoding of r to b.
func AppendRecord(b []byte, r *Record) []byte {
	b = appendStringField(b, tagRecordID, r.ID)
	b = appendUintField(b, tagRecordFirst, uint64(r.FirstSeen))
	b = appendUintField(b, tagRecordLast, uint64(r.LastSeen))
	b = appendUintField(b, tagRecordAttempts, uint64(r.Attempts))
	b = appendStringField(b, tagRecordState, r.State)
	if r.LastReason.Code != 0 {
		b = appendUintField(b, tagRecordCode, uint64(r.LastReason.Code))
	}
	b = appendStringField(b, tagRecordEnhanced, r.LastReason.Enhanced)
	b = appendStringField(b, tagRecordText, r.LastReason.Text)
	if r.Notices != 0 {
		b = appendUintField(b, tagRecordNotices, uint64(r.Notices))
	}
	if r.LastNotice != 0 {
		b = appendUintField(b, tagRecordLastNote, uint64(r.LastNotice))
	}
	return b
}

// DecodeRecord decodes a record.
func DecodeRecord(p []byte) (Record, error) {
	var r Record
	rd := reader{p: p}
	for !rd.done() {
		tag, val, err := rd.field()
		if err != nil {
			return r, err
		}
		switch tag {
		case tagRecordID:
			r.ID = string(val.p)
		case tagRecordState:
			r.State = string(val.p)
		case tagRecordEnhanced:
			r.LastReason.Enhanced = string(val.p)
		case tagRecordText:
			r.LastReason.Text = string(val.p)
		case tagRecordFirst, tagRecordLast, tagRecordAttempts, tagRecordCode, tagRecordNotices, tagRecordLastNote:
			v, err := val.uintValue()
			if err != nil {
				return r, err
			}
			switch tag {
			case tagRecordFirst:
				r.FirstSeen = int64(v)
			case tagRecordLast:
				r.LastSeen = int64(v)
			case tagRecordAttempts:
				r.Attempts = int(v)
			case tagRecordCode:
				r.LastReason.Code = int(v)
			case tagRecordLastNote:
				r.LastNotice = int64(v)
			default:
				r.Notices = int(v)
			}
		}
	}
	return r, nil
}
