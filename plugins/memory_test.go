package plugins

import "testing"

// TestGuestMemoryGrowsInPlaceAndComesBackEmpty: a reserved memory grows
// without moving, refuses to grow past its reservation, and a freed one is
// handed to the next instance zeroed, as a new Wasm memory must be.
func TestGuestMemoryGrowsInPlaceAndComesBackEmpty(t *testing.T) {
	if !reserveSupported {
		t.Skip("no reservations on this platform")
	}
	var g guestMemory
	defer g.release()
	const limit = 4 * wasmPageSize
	m := g.allocate(wasmPageSize, limit)
	small := m.Reallocate(wasmPageSize)
	small[10] = 1
	big := m.Reallocate(3 * wasmPageSize)
	if &big[0] != &small[0] || big[10] != 1 {
		t.Fatal("growing moved or lost the memory")
	}
	if m.Reallocate(limit+wasmPageSize) != nil {
		t.Error("grew past the reservation")
	}
	big[2*wasmPageSize] = 2
	m.Free()
	m.Free() // wazero frees once, but a second Free must not recycle twice

	again := g.allocate(wasmPageSize, limit)
	b := again.Reallocate(3 * wasmPageSize)
	if &b[0] != &big[0] {
		t.Error("a freed reservation was not reused")
	}
	if b[10] != 0 || b[2*wasmPageSize] != 0 {
		t.Error("a reused reservation was not emptied")
	}
	if other := g.allocate(wasmPageSize, limit).Reallocate(wasmPageSize); &other[0] == &b[0] {
		t.Error("one reservation handed out twice")
	}
}
