package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/PID/stat's CPU times: USER_HZ, fixed at 100
// by the Linux ABI whatever the kernel's own tick rate.
const userHZ = 100

// processCPU is the user+system CPU time pid has used, all threads, from
// /proc/PID/stat (fields 14 and 15, counted after the parenthesised
// command name, which may itself contain spaces or parentheses).
func processCPU(pid int) (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("server CPU of pid %d: %w", pid, err)
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("server CPU of pid %d: %s has no command name", pid, path)
	}
	fields := bytes.Fields(b[end+1:]) // fields[0] is field 3 (state)
	if len(fields) < 13 {
		return 0, fmt.Errorf("server CPU of pid %d: %s has %d fields", pid, path, len(fields)+2)
	}
	var ticks uint64
	for _, f := range fields[11:13] { // utime, stime
		n, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("server CPU of pid %d: %s: %w", pid, path, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// selfCPU is this process's own user+system time, in microseconds'
// precision, so a report can show what the load generator cost.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
