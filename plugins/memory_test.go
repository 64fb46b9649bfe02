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

// TestGuestMemoryFreedDuringACallWaitsForQuiet: a memory freed while a call
// is in flight (wazero closing a module whose call overran its deadline)
// is not handed to another instance until no call is in flight, and is
// emptied again then: the overrunning call may have written to it late.
func TestGuestMemoryFreedDuringACallWaitsForQuiet(t *testing.T) {
	if !reserveSupported {
		t.Skip("no reservations on this platform")
	}
	var g guestMemory
	defer g.release()
	const limit = 2 * wasmPageSize
	g.enterCall()
	m := g.allocate(wasmPageSize, limit)
	mem := m.Reallocate(wasmPageSize)
	m.Free()
	mem[7] = 9 // the overrunning call writes after the close

	during := g.allocate(wasmPageSize, limit).Reallocate(wasmPageSize)
	if &during[0] == &mem[0] {
		t.Fatal("a memory freed during a call was reused while the call was in flight")
	}
	g.leaveCall()
	after := g.allocate(wasmPageSize, limit).Reallocate(wasmPageSize)
	if &after[0] != &mem[0] {
		t.Fatal("the memory was not reused once no call was in flight")
	}
	if after[7] != 0 {
		t.Error("the late write survived into the next instance")
	}
}
