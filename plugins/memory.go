package plugins

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// guestMemory backs the linear memories of one plugin's instances with
// address space reserved up front (on Linux; elsewhere wazero's default, a
// Go byte slice).
//
// Why: wazero's default grows a guest memory by allocating a larger Go
// slice and copying, so every growth of a Go guest's heap left the old copy
// as garbage on the host heap, and the live memories counted towards the
// host's GC target. A reservation grows in place: pages become resident
// only when the guest touches them, nothing is copied, and the host heap
// holds none of it.
//
// A freed memory is not unmapped but emptied (its pages given back) and
// kept for the plugin's next instance: wazero frees a memory when its
// module closes, which it may do (a deadline, Plugin.Close) while the call
// that overran is still running; unmapping under it would crash the
// process. Nor is it handed to another instance while any call of the
// plugin is in flight: the overrunning call could still write a few bytes
// before it notices the close, and those must never land in another
// message's instance. Such a memory waits in pending until the plugin has
// no call in flight. The reservations are unmapped by release, once no
// call can run.
type guestMemory struct {
	mu       sync.Mutex
	calls    int            // calls in flight on the plugin's instances
	pending  []*reservation // freed while a call was in flight
	free     []*reservation // emptied, ready for the next instance
	all      []*reservation // every reservation made, for release
	released bool
}

// enterCall and leaveCall bracket every call of a hook: a memory freed
// meanwhile is reused only once no call is in flight.
func (g *guestMemory) enterCall() {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
}

func (g *guestMemory) leaveCall() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls--
	if g.calls > 0 || len(g.pending) == 0 || g.released {
		return
	}
	for _, r := range g.pending {
		r.empty() // again: an overrunning call may have written after the first
	}
	g.free = append(g.free, g.pending...)
	g.pending = nil
}

// allocator returns the wazero hook, or nil where reserving is not
// supported (wazero's default then applies).
func (g *guestMemory) allocator() experimental.MemoryAllocator {
	if !reserveSupported {
		return nil
	}
	return experimental.MemoryAllocatorFunc(g.allocate)
}

// allocate hands out a kept reservation of at least max bytes, or makes
// one; if the address space cannot be reserved (e.g. with strict
// overcommit, vm.overcommit_memory = 2, where MAP_NORESERVE is ignored and
// the whole limit counts) it falls back to a Go slice.
func (g *guestMemory) allocate(capacity, max uint64) experimental.LinearMemory {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, r := range g.free {
		if uint64(len(r.mem)) >= max {
			g.free = append(g.free[:i], g.free[i+1:]...)
			return &linearMemory{owner: g, r: r}
		}
	}
	r, err := reserve(max)
	if err != nil || g.released {
		return &sliceMemory{buf: make([]byte, 0, capacity), max: max}
	}
	g.all = append(g.all, r)
	return &linearMemory{owner: g, r: r}
}

// recycle empties r and keeps it for the next instance.
func (g *guestMemory) recycle(r *reservation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.released {
		return // unmapped: the address range may belong to someone else now
	}
	r.empty()
	if g.calls > 0 {
		g.pending = append(g.pending, r)
		return
	}
	g.free = append(g.free, r)
}

// release unmaps every reservation. Call it only when no instance can run
// any more (the runtime is closed and no call is in flight).
func (g *guestMemory) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.released = true
	for _, r := range g.all {
		r.unmap()
	}
	g.all, g.free, g.pending = nil, nil, nil
}

// linearMemory is one instance's memory on a reservation.
type linearMemory struct {
	owner *guestMemory
	r     *reservation
	once  sync.Once
}

// Reallocate grows in place; nil (the guest's memory.grow fails) past the
// reservation, which is the plugin's memory limit.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.r.mem)) {
		return nil
	}
	return m.r.mem[:size:size]
}

func (m *linearMemory) Free() { m.once.Do(func() { m.owner.recycle(m.r) }) }

// sliceMemory is the fallback: a Go slice grown by copying, as wazero's
// default does.
type sliceMemory struct {
	buf []byte
	max uint64
}

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size > uint64(cap(m.buf)) {
		grown := make([]byte, size, max(size, 2*uint64(cap(m.buf))))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }
