package stamp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultHeader is the stamp header's name unless configured otherwise.
const DefaultHeader = "X-Wasmilter-Stamp"

// Stamp is a message's identity and the time it was first seen.
type Stamp struct {
	ID        Identity
	FirstSeen time.Time // second precision, UTC
}

// Errors from [Codec.Parse].
var (
	ErrMalformed = errors.New("not a well-formed stamp")
	ErrBadMAC    = errors.New("stamp MAC does not verify")
	ErrNoMAC     = errors.New("stamp has no MAC but keys are configured")
)

// Codec formats and verifies stamp header values.
type Codec struct {
	header string
	keys   [][]byte // keys[0] signs; every key verifies
}

// macLen is the length of the truncated HMAC-SHA256 in bytes: 128 bits,
// as RFC 2104 section 5 allows, keeps the header short.
const macLen = 16

// NewCodec returns a codec writing header name. With no keys, stamps carry
// no MAC and any well-formed stamp is accepted as ours; with keys, the first
// signs new stamps and a carried stamp must verify under one of them.
func NewCodec(header string, keys [][]byte) (*Codec, error) {
	if header == "" {
		header = DefaultHeader
	}
	for i, k := range keys {
		if len(k) < 16 {
			return nil, fmt.Errorf("stamp key %d is %d bytes; use at least 16 random bytes", i+1, len(k))
		}
	}
	return &Codec{header: header, keys: keys}, nil
}

// Header returns the header name stamps are written to.
func (c *Codec) Header() string { return c.header }

// Signed reports whether stamps carry a MAC.
func (c *Codec) Signed() bool { return len(c.keys) > 0 }

// Format renders a stamp as a header value:
//
//	v=1; id=<26 base32 chars>; t=<RFC 3339 UTC>[; mac=<base64url>]
func (c *Codec) Format(s Stamp) string {
	body := c.body(s)
	if len(c.keys) == 0 {
		return body
	}
	return body + "; mac=" + base64.RawURLEncoding.EncodeToString(mac(c.keys[0], body))
}

func (c *Codec) body(s Stamp) string {
	return "v=1; id=" + s.ID.String() + "; t=" + s.FirstSeen.UTC().Format(time.RFC3339)
}

// Parse reads a stamp header value and verifies it. The result is only
// returned when the stamp is ours: well formed and, with keys configured,
// carrying a MAC that verifies.
func (c *Codec) Parse(value string) (Stamp, error) {
	tags, err := parseTags(unfold(value))
	if err != nil {
		return Stamp{}, err
	}
	if tags["v"] != "1" {
		return Stamp{}, fmt.Errorf("%w: version %q, want 1", ErrMalformed, tags["v"])
	}
	id, err := ParseIdentity(tags["id"])
	if err != nil {
		return Stamp{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	t, err := time.Parse(time.RFC3339, tags["t"])
	if err != nil {
		return Stamp{}, fmt.Errorf("%w: time %q: %v", ErrMalformed, tags["t"], err)
	}
	s := Stamp{ID: id, FirstSeen: t.UTC()}
	if err := c.verify(s, tags["mac"]); err != nil {
		return Stamp{}, err
	}
	return s, nil
}

func (c *Codec) verify(s Stamp, macText string) error {
	if len(c.keys) == 0 {
		return nil
	}
	if macText == "" {
		return ErrNoMAC
	}
	got, err := base64.RawURLEncoding.DecodeString(macText)
	if err != nil || len(got) != macLen {
		return fmt.Errorf("%w: mac is not %d bytes of base64url", ErrMalformed, macLen)
	}
	body := c.body(s)
	for _, k := range c.keys {
		if hmac.Equal(got, mac(k, body)) {
			return nil
		}
	}
	return ErrBadMAC
}

func mac(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return m.Sum(nil)[:macLen]
}

// parseTags splits "k=v; k=v" into a map, refusing duplicates and empty keys.
func parseTags(v string) (map[string]string, error) {
	tags := make(map[string]string, 4)
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: tag %q is not key=value", ErrMalformed, part)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("%w: tag %q appears twice", ErrMalformed, k)
		}
		tags[k] = val
	}
	return tags, nil
}

// Found is what a message's header says about stamps.
type Found struct {
	Stamp   Stamp // the first valid stamp of ours, when Valid
	Valid   bool
	Value   string // its header value as carried
	Invalid []int  // 1-based occurrences of stamp headers that are not ours
	Errors  []error
}

// Inspect looks at every header named like our stamp. A message may carry
// several (a forwarded message stamped elsewhere, a forgery): the first one
// that verifies is ours; the others are reported by occurrence so a policy
// can delete them.
func (c *Codec) Inspect(headers []Field) Found {
	var f Found
	occurrence := 0
	for _, h := range headers {
		if !strings.EqualFold(h.Name, c.header) {
			continue
		}
		occurrence++
		s, err := c.Parse(h.Value)
		switch {
		case err == nil && !f.Valid:
			f.Stamp, f.Valid, f.Value = s, true, h.Value
		case err == nil && s == f.Stamp:
			// The same stamp twice: harmless duplicate, still ours.
		default:
			if err == nil {
				err = fmt.Errorf("a second, different stamp (id %s)", s.ID)
			}
			f.Invalid = append(f.Invalid, occurrence)
			f.Errors = append(f.Errors, fmt.Errorf("%s #%d: %w", c.header, occurrence, err))
		}
	}
	return f
}

// ParseKey decodes a configured key: "base64:..." or "hex:..." for binary
// keys, otherwise the string's bytes.
func ParseKey(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "base64:"):
		return base64.StdEncoding.DecodeString(s[len("base64:"):])
	case strings.HasPrefix(s, "hex:"):
		return hex.DecodeString(s[len("hex:"):])
	}
	return []byte(s), nil
}
