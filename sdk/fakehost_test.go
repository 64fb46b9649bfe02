package sdk

import (
	"encoding/binary"
	"testing"

	"github.com/wasmilter/wasmilter/sdk/abi"
)

// fakeHost implements hostCalls the way the real host does: data is written
// only when it fits, and the length needed is returned either way.
type fakeHost struct {
	clock      int64
	macros     map[string]string
	stampData  []byte // encoded stamp; nil means absent
	recordData []byte // encoded record; nil means absent
	propsData  []byte // encoded properties; nil means absent
	kv         map[string][]byte
	counters   map[string]int64
	logs       []string
	calls      map[string]int
}

func newFakeHost() *fakeHost {
	return &fakeHost{macros: map[string]string{}, calls: map[string]int{}, kv: map[string][]byte{}, counters: map[string]int64{}}
}

func (f *fakeHost) record(out []byte) int32 {
	f.calls["record"]++
	if f.recordData == nil {
		return abi.ResultAbsent
	}
	return writeIfFits(out, f.recordData)
}

func (f *fakeHost) properties(out []byte) int32 {
	f.calls["properties"]++
	if f.propsData == nil {
		return abi.ResultAbsent
	}
	return writeIfFits(out, f.propsData)
}

func (f *fakeHost) kvGet(key string, out []byte) int32 {
	v, ok := f.kv[key]
	if !ok {
		return abi.ResultAbsent
	}
	return writeIfFits(out, v)
}

func (f *fakeHost) kvSet(key string, value []byte, _ int64) int32 {
	if key == "" || len(key) > abi.MaxKVKey {
		return abi.ResultRefused
	}
	f.kv[key] = append([]byte(nil), value...)
	return 0
}

func (f *fakeHost) kvIncr(key string, delta, _ int64, out *[8]byte) int32 {
	if key == "" || len(key) > abi.MaxKVKey {
		return abi.ResultRefused
	}
	f.counters[key] += delta
	binary.LittleEndian.PutUint64(out[:], uint64(f.counters[key]))
	return 0
}

func (f *fakeHost) log(level abi.LogLevel, msg string) {
	f.calls["log"]++
	f.logs = append(f.logs, msg)
}

func (f *fakeHost) now() int64 {
	f.calls["now"]++
	return f.clock
}

func (f *fakeHost) macro(name string, out []byte) int32 {
	f.calls["macro"]++
	v, ok := f.macros[name]
	if !ok {
		return abi.ResultAbsent
	}
	return writeIfFits(out, []byte(v))
}

func (f *fakeHost) stamp(out []byte) int32 {
	f.calls["stamp"]++
	if f.stampData == nil {
		return abi.ResultAbsent
	}
	return writeIfFits(out, f.stampData)
}

func writeIfFits(out, data []byte) int32 {
	if len(data) <= len(out) {
		copy(out, data)
	}
	return int32(len(data))
}

// useHost installs f as the host for the rest of the test.
func useHost(t testing.TB, f hostCalls) {
	t.Helper()
	prev := host
	host = f
	t.Cleanup(func() { host = prev })
}

// usePlugin registers p as the only plugin for the rest of the test.
func usePlugin(t testing.TB, p Plugin) {
	t.Helper()
	prev := registered
	registered = registry{}
	registered.register(p)
	t.Cleanup(func() { registered = prev })
}

// writeEvent puts an encoded event into the exchange buffer, as the host
// does, and returns its length.
func writeEvent(ev *abi.Event) int32 {
	enc := abi.AppendEvent(nil, ev)
	buf := exchangeBuffer(int32(len(enc)))
	return int32(copy(buf, enc))
}

// writeConfig puts an encoded config into the exchange buffer.
func writeConfig(entries []abi.ConfigEntry) int32 {
	enc := abi.AppendConfig(nil, entries)
	buf := exchangeBuffer(int32(len(enc)))
	return int32(copy(buf, enc))
}

// messageFor builds the Message a handler would see for ev.
func messageFor(t testing.TB, ev abi.Event) *Message {
	t.Helper()
	m, err := newMessage(abi.AppendEvent(nil, &ev))
	if err != nil {
		t.Fatalf("newMessage: %v", err)
	}
	return m
}

// decodeEvent decodes like the SDK does and reassembles a whole abi.Event,
// for comparison with abi.DecodeEvent.
func decodeEvent(raw []byte) (abi.Event, error) {
	m, err := newMessage(raw)
	if err != nil {
		return abi.Event{}, err
	}
	ev := m.ev
	ev.Headers = m.Headers().All()
	return ev, nil
}
