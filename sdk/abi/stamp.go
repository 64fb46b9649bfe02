package abi

// StampState says whether the message arrived carrying a stamp of ours.
type StampState uint8

const (
	// StampNew: the message carried no stamp of ours; Stamp holds a new one.
	StampNew StampState = iota
	// StampCarried: the message carried a valid stamp of ours (its MAC
	// checked when a key is configured); Stamp holds that stamp. Do not stamp
	// again.
	StampCarried
	// StampForged: the message carried a header with our stamp's name that
	// is not a valid stamp of ours (bad syntax or MAC). Stamp holds a new one;
	// Invalid lists the 1-based occurrences of the bad headers, for deletion.
	StampForged
)

func (s StampState) String() string {
	switch s {
	case StampNew:
		return "new"
	case StampCarried:
		return "carried"
	case StampForged:
		return "forged"
	}
	return "stamp-state(" + itoa(int(s)) + ")"
}

// Stamp is the message's stamp as the host minted (or found) it: the answer
// of the stamp host function. The host formats the header value so that every
// plugin and every node writes the same bytes for the same stamp.
type Stamp struct {
	ID          string // stable identity of the message
	FirstSeen   int64  // Unix seconds the identity was first seen
	HeaderName  string // e.g. "X-Wasmilter-Stamp"
	HeaderValue string // the formatted value to add
	State       StampState
	Invalid     []int // 1-based occurrences of invalid stamp headers
}

const (
	tagStampID      = 1
	tagStampFirst   = 2
	tagStampName    = 3
	tagStampValue   = 4
	tagStampState   = 5
	tagStampInvalid = 6
)

// AppendStamp appends the encoding of s to b.
func AppendStamp(b []byte, s *Stamp) []byte {
	b = appendStringField(b, tagStampID, s.ID)
	b = appendUintField(b, tagStampFirst, uint64(s.FirstSeen))
	b = appendStringField(b, tagStampName, s.HeaderName)
	b = appendStringField(b, tagStampValue, s.HeaderValue)
	b = appendUintField(b, tagStampState, uint64(s.State))
	for _, i := range s.Invalid {
		b = appendUintField(b, tagStampInvalid, uint64(i))
	}
	return b
}

// DecodeStamp decodes a stamp.
func DecodeStamp(p []byte) (Stamp, error) {
	var s Stamp
	r := reader{p: p}
	for !r.done() {
		tag, val, err := r.field()
		if err != nil {
			return s, err
		}
		switch tag {
		case tagStampID:
			s.ID = string(val.p)
		case tagStampName:
			s.HeaderName = string(val.p)
		case tagStampValue:
			s.HeaderValue = string(val.p)
		case tagStampFirst, tagStampState, tagStampInvalid:
			v, err := val.uintValue()
			if err != nil {
				return s, err
			}
			switch tag {
			case tagStampFirst:
				s.FirstSeen = int64(v)
			case tagStampState:
				s.State = StampState(v)
			default:
				s.Invalid = append(s.Invalid, int(v))
			}
		}
	}
	return s, nil
}
