package stamp

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
)

// Identity is a message's stable identity: the first 128 bits of a SHA-256
// over its normalized identifying fields. 128 bits keep accidental
// collisions out of reach for any mail volume while the text form stays
// short enough for a header and a log line (26 characters).
type Identity [16]byte

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// String returns the identity as 26 lowercase base32 characters.
func (id Identity) String() string { return idEncoding.EncodeToString(id[:]) }

// IsZero reports whether the identity was never set.
func (id Identity) IsZero() bool { return id == Identity{} }

// ParseIdentity parses the text form of an identity.
func ParseIdentity(s string) (Identity, error) {
	var id Identity
	if len(s) != 26 {
		return id, fmt.Errorf("identity %q: want 26 base32 characters, got %d", s, len(s))
	}
	b, err := idEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("identity %q: not base32", s)
	}
	copy(id[:], b)
	return id, nil
}

// Field is a header field as the MTA passed it.
type Field struct{ Name, Value string }

// Facts are what a message's identity is derived from.
type Facts struct {
	Sender     string   // envelope sender, without angle brackets; "" for <>
	Recipients []string // envelope recipients, in any order
	Headers    []Field  // the header as received
}

// fingerprintHeaders are the fields hashed when a message has no
// Message-ID: an MUA or MTA resending the same message repeats them
// verbatim, while trace fields (Received, Return-Path, our own stamp) change
// from hop to hop and attempt to attempt.
var fingerprintHeaders = []string{"date", "from", "sender", "to", "cc", "subject", "in-reply-to", "references"}

// Derive computes the identity of a message. Message-ID wins when present;
// otherwise the fingerprint headers stand in for it. Either way the envelope
// (sender and the sorted, de-duplicated recipients) is part of it, so the
// same Message-ID sent to two different recipient sets (a list expansion, a
// Bcc copy) yields two identities, each with its own retry history.
func Derive(f Facts) Identity {
	h := sha256.New()
	write := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
	}
	write("wasmilter-identity-v1")
	if mid := NormalizeMessageID(headerValue(f.Headers, "message-id")); mid != "" {
		write("message-id", mid)
	} else {
		write("fingerprint")
		for _, name := range fingerprintHeaders {
			for _, v := range headerValues(f.Headers, name) {
				write(name, unfold(v))
			}
		}
	}
	write("sender", NormalizeAddress(f.Sender))
	for _, r := range normalizedRecipients(f.Recipients) {
		write("rcpt", r)
	}
	var id Identity
	copy(id[:], h.Sum(nil))
	return id
}

// NormalizeMessageID reduces a Message-ID header value to its msg-id without
// angle brackets, comments or folding, with the domain part (right of '@')
// lowercased since domains are case-insensitive. It returns "" when the
// value holds no plausible msg-id.
func NormalizeMessageID(v string) string {
	v = strings.TrimSpace(unfold(v))
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ""
		}
		v = v[i+1 : i+j]
	}
	v = strings.TrimSpace(v)
	if v == "" || strings.ContainsAny(v, " \t<>") {
		return ""
	}
	if at := strings.LastIndexByte(v, '@'); at >= 0 {
		v = v[:at+1] + strings.ToLower(v[at+1:])
	}
	return v
}

// NormalizeAddress strips angle brackets and whitespace and lowercases the
// domain. The local part keeps its case: RFC 5321 leaves it to the receiving
// system, and a retry repeats it byte for byte anyway.
func NormalizeAddress(a string) string {
	a = strings.TrimSpace(a)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		a = a[:at+1] + strings.ToLower(a[at+1:])
	}
	return a
}

func normalizedRecipients(rs []string) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, NormalizeAddress(r))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func headerValue(hs []Field, lowerName string) string {
	for _, f := range hs {
		if strings.EqualFold(f.Name, lowerName) {
			return f.Value
		}
	}
	return ""
}

func headerValues(hs []Field, lowerName string) []string {
	var out []string
	for _, f := range hs {
		if strings.EqualFold(f.Name, lowerName) {
			out = append(out, f.Value)
		}
	}
	return out
}

// unfold removes folding (CRLF or LF followed by white space) and trims, so
// that a header refolded by a relay still yields the same identity.
func unfold(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
	}
	return strings.Join(strings.Fields(v), " ")
}
