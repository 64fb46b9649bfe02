package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/internal/manualclock"
)

// newFakeClock is an injected clock: tests move time instead of sleeping.
func newFakeClock() *manualclock.Clock {
	return manualclock.New(time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC))
}

// realisticHeader is a 20-field header as Postfix passes it after a few
// hops: trace fields, the RFC 5322 originator and destination fields, MIME,
// a DKIM signature and some list and client noise. Message i differs from
// message j in its Message-ID and Subject.
func realisticHeader(i int) []Field {
	return []Field{
		{"Received", fmt.Sprintf("from mail-%d.example.net (mail-%d.example.net [192.0.2.%d])\n\tby mx.example.org (Postfix) with ESMTPS id 4F2A1%04X\n\tfor <bob@example.org>; Sun, 22 Nov 2026 07:00:00 +0000 (UTC)", i%50, i%50, i%250, i%65536)},
		{"Received", "from [10.0.0.5] (unknown [198.51.100.7])\n\tby mail.example.net (Postfix) with ESMTPSA id 9B1C2\n\tfor <bob@example.org>; Sun, 22 Nov 2026 06:59:58 +0000 (UTC)"},
		{"DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=mail;\n\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaXMgYXMgbG9uZyBhcyBvbmUgd291bGQgYmU="},
		{"Message-ID", fmt.Sprintf("<%d.20261122065957@Mail.Example.NET>", i)},
		{"Date", "Sun, 22 Nov 2026 06:59:57 +0000"},
		{"From", "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.net>"},
		{"To", "Bob <bob@example.org>, carol@example.org"},
		{"Cc", "dave@example.org"},
		{"Subject", fmt.Sprintf("=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= #%d", i)},
		{"MIME-Version", "1.0"},
		{"Content-Type", "multipart/alternative; boundary=\"b1_4f2a1c0ffee\""},
		{"X-Mailer", "Example Mail 4.2"},
		{"Reply-To", "juergen@example.net"},
		{"In-Reply-To", "<parent.1@example.org>"},
		{"References", "<root.1@example.org> <parent.1@example.org>"},
		{"List-Id", "Example Users <users.lists.example.net>"},
		{"List-Unsubscribe", "<mailto:users-unsubscribe@lists.example.net>"},
		{"Precedence", "list"},
		{"X-Spam-Status", "No, score=-0.1 required=5.0 tests=DKIM_SIGNED,DKIM_VALID autolearn=ham"},
		{"X-Wasmilter-Stamp", "v=1; id=aaaaaaaaaaaaaaaaaaaaaaaaaa; t=2026-11-22T06:59:57Z"},
	}
}

// keyOf makes distinct keys for test message numbers.
func keyOf(i int) Key {
	var k Key
	binary.BigEndian.PutUint64(k[:], uint64(i))
	binary.BigEndian.PutUint64(k[8:], uint64(i)*0x9E3779B97F4A7C15)
	return k
}

// sourceOf makes a distinct source for a test number, cheaply.
func sourceOf(i int) Source {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// smallProps are small hand-built properties of message i.
func smallProps(i int) *Properties {
	return &Properties{MessageID: fmt.Sprintf("%d@example.net", i), From: "a@example.net", HeaderCount: 10}
}

func newTestCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkCountersAddUp asserts the invariants Stats documents, on a cache
// nothing writes to any more, and that occupancy matches what is held.
func checkCountersAddUp(t *testing.T, c *Cache, lookups uint64) {
	t.Helper()
	s := c.Stats()
	for _, tab := range []struct {
		name string
		ts   TableStats
	}{{"properties", s.Properties}, {"kv", s.KV}} {
		if got := tab.ts.Stored - tab.ts.Removed.Total(); int64(got) != tab.ts.Entries {
			t.Errorf("%s: stored %d - removed %d = %d, but entries = %d (%+v)", tab.name, tab.ts.Stored,
				tab.ts.Removed.Total(), got, tab.ts.Entries, tab.ts)
		}
	}
	if got := s.Properties.Hits + s.Properties.Misses + s.Properties.Mismatches; lookups > 0 && got != lookups {
		t.Errorf("hits+misses+mismatches = %d, want %d lookups", got, lookups)
	}
	var n, bytes int64
	for info := range c.Entries() {
		n++
		bytes += info.Size
	}
	if n != s.Properties.Entries || bytes != s.Properties.Bytes {
		t.Errorf("table holds %d entries / %d bytes, stats say %d / %d", n, bytes, s.Properties.Entries, s.Properties.Bytes)
	}
	if c.kv != nil {
		var kn, kb int64
		c.kv.each(time.Time{}, func(_ string, e *kvEntry) bool {
			kn++
			kb += e.size
			return true
		})
		if kn != s.KV.Entries || kb != s.KV.Bytes {
			t.Errorf("kv holds %d entries / %d bytes, stats say %d / %d", kn, kb, s.KV.Entries, s.KV.Bytes)
		}
	}
}
