package retry

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wasmilter/wasmilter/stamp"
)

// fullRecord has every field set and every bound reached: the largest
// record the ledger stores.
func fullRecord() Record {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	rec := Record{
		ID: stamp.Derive(stamp.Facts{Sender: "a@example.org"}), FirstSeen: at, LastSeen: at.Add(time.Hour),
		State: Expired, Attempts: 40, Sender: "a@example.org", Recipients: []string{"b@example.net", "c@example.net"},
		Truncated: true, ExpiredAt: at.Add(2 * time.Hour), UpdatedAt: at.Add(3 * time.Hour),
		ExpiredReason: Reason{Code: 550, Enhanced: "5.4.7", Text: "expired"},
		Notices:       []Notice{{Step: 1, At: at.Add(time.Minute), Kind: "delayed"}},
		Outbox: []OutboxEntry{
			{Step: 1, Status: NoticeSent, Node: "mx1", Claims: 2, At: at.Add(time.Minute)},
			{Step: 2, Status: NoticePending, Node: "mx2", Until: at.Add(time.Hour), Claims: 1, Error: "451 4.3.0 try later", At: at},
		},
	}
	for i := range MaxHistory {
		rec.History = append(rec.History, Attempt{At: at.Add(time.Duration(i) * time.Minute), QueueID: fmt.Sprintf("Q%d", i),
			ClientIP: "2001:db8::1", Helo: "mx.example.org", Reason: Reason{Code: 451, Enhanced: "4.7.1", Text: "Greylisted \"\\ é"}})
	}
	for size := 0; size+100 <= MaxHeaderBytes; size += 100 {
		rec.Headers = append(rec.Headers, Header{Name: "X-Filler", Value: strings.Repeat("h", 100-len("X-Filler")-4)})
	}
	return rec
}

func TestCodecRoundTrip(t *testing.T) {
	for _, rec := range []Record{fullRecord(), {ID: stamp.Derive(stamp.Facts{}), State: Deferred}} {
		b, err := encodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("round trip changed the record\nwant %+v\n got %+v", rec, got)
		}
	}
}

func TestCodecRefusesWhatItCannotRead(t *testing.T) {
	good, err := encodeRecord(Record{ID: stamp.Derive(stamp.Facts{}), State: Deferred})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"not JSON":       "\x00\x01garbage",
		"future version": strings.Replace(string(good), `"v":1`, `"v":2`, 1),
		"no version":     strings.Replace(string(good), `"v":1,`, ``, 1),
		"bad identity":   `{"v":1,"id":"short","state":"deferred"}`,
		"unknown state":  strings.Replace(string(good), `"deferred"`, `"limbo"`, 1),
		"unknown notice status": strings.Replace(string(good), `"state"`,
			`"outbox":[{"step":1,"status":"maybe","at":1}],"state"`, 1),
	} {
		if _, err := decodeRecord([]byte(b)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func BenchmarkCodec(b *testing.B) {
	rec := fullRecord()
	enc, err := encodeRecord(rec)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode-largest", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := encodeRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-largest", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := decodeRecord(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestNoticeMessageIDIsStablePerStep(t *testing.T) {
	id := stamp.Derive(stamp.Facts{Sender: "a@example.org"})
	one := NoticeMessageID(id, 1, "mx.example.org")
	if one != NoticeMessageID(id, 1, "mx.example.org") {
		t.Error("the Message-ID of one step changes between calls")
	}
	if one == NoticeMessageID(id, 2, "mx.example.org") || one == NoticeMessageID(stamp.Derive(stamp.Facts{}), 1, "mx.example.org") {
		t.Error("two steps or two messages share a Message-ID")
	}
	if !strings.HasPrefix(one, "<") || !strings.HasSuffix(one, "@mx.example.org>") || strings.ContainsAny(one, " \r\n") {
		t.Errorf("not a msg-id: %q", one)
	}
}
