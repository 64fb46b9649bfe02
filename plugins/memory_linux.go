package plugins

import (
	"fmt"
	"syscall"
)

const reserveSupported = true

// reservation is address space for one guest memory: mapped private and
// anonymous without swap reservation, so only touched pages cost memory.
type reservation struct{ mem []byte }

func reserve(size uint64) (*reservation, error) {
	if size == 0 || size > 1<<32 {
		return nil, fmt.Errorf("reserve %d bytes: out of range", size)
	}
	mem, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve %d bytes: %w", size, err)
	}
	return &reservation{mem: mem}, nil
}

// empty gives the pages back; the next touch reads zeros, as a new Wasm
// memory must.
func (r *reservation) empty() { _ = syscall.Madvise(r.mem, syscall.MADV_DONTNEED) }

func (r *reservation) unmap() { _ = syscall.Munmap(r.mem) }
