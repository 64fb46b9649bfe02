package cache

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// Key is a message's identity, the key properties are cached under. It has
// the layout of stamp.Identity, so cache.Key(id) converts one, and the same
// text form; the package does not import stamp so that it stays a leaf.
type Key [16]byte

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// String returns the key as 26 lowercase base32 characters, the text form
// of stamp.Identity, so an admin can paste an identity from a log line.
func (k Key) String() string { return keyEncoding.EncodeToString(k[:]) }

// ParseKey parses the text form of a key (a message identity).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 26 {
		return k, fmt.Errorf("cache key %q: want 26 base32 characters, got %d", s, len(s))
	}
	b, err := keyEncoding.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("cache key %q: not base32", s)
	}
	copy(k[:], b)
	return k, nil
}

// Source is the SHA-256 of the header fields properties were computed from.
// The identity is derived from a few fields only; two different messages
// (or two versions of one, rewritten by a relay) can share it, and the
// source tells them apart, so one message's properties are never served to
// another.
type Source [32]byte

// String returns the source in hex.
func (s Source) String() string { return hex.EncodeToString(s[:]) }

// sourceHasher is a reusable SHA-256 state with a scratch buffer, pooled so
// that SourceOf does not allocate per message.
type sourceHasher struct {
	h   hash.Hash
	buf []byte
}

const sourceScratch = 4096

var sourceHashers = sync.Pool{New: func() any {
	return &sourceHasher{h: sha256.New(), buf: make([]byte, 0, sourceScratch)}
}}

// SourceOf hashes every field, name and value, in order, each prefixed with
// its length so that no two different headers hash alike by shifting bytes
// between fields. Values are hashed exactly as given, folds included: a
// refolded header is a different source, and recomputing is cheap.
func SourceOf(fields []Field) Source {
	sh := sourceHashers.Get().(*sourceHasher)
	sh.h.Reset()
	sh.buf = sh.buf[:0]
	for _, f := range fields {
		sh.writeString(f.Name)
		sh.writeString(f.Value)
	}
	sh.flush()
	var src Source
	sh.h.Sum(src[:0])
	sourceHashers.Put(sh)
	return src
}

func (sh *sourceHasher) writeString(s string) {
	if cap(sh.buf)-len(sh.buf) < binary.MaxVarintLen64 {
		sh.flush()
	}
	sh.buf = binary.AppendUvarint(sh.buf, uint64(len(s)))
	for len(s) > 0 {
		if len(sh.buf) == cap(sh.buf) {
			sh.flush()
		}
		n := min(len(s), cap(sh.buf)-len(sh.buf))
		sh.buf = append(sh.buf, s[:n]...)
		s = s[n:]
	}
}

func (sh *sourceHasher) flush() {
	sh.h.Write(sh.buf)
	sh.buf = sh.buf[:0]
}

// MarshalText makes a key its text form in JSON and logs.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses the text form of a key.
func (k *Key) UnmarshalText(b []byte) error {
	parsed, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// MarshalText makes a source hex in JSON and logs.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
