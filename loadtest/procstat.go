package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's utime and stime:
// 100 on every Linux architecture Go supports (the kernel exports it to
// user space as a constant; see proc(5)).
const clockTicks = 100

// procSample is a process's CPU time and resident memory at one moment.
type procSample struct {
	cpu time.Duration
	rss int64 // bytes
}

// readProc reads pid's user+system CPU time from /proc/PID/stat and its
// VmRSS from /proc/PID/status.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// or parentheses itself: fields are counted after the last ')'.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return procSample{}, fmt.Errorf("server pid %d: malformed stat", pid)
	}
	fields := bytes.Fields(stat[end+1:])
	// After the name: state is field 3, utime 14, stime 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return procSample{}, fmt.Errorf("server pid %d: short stat", pid)
	}
	var ticks int64
	for _, i := range []int{utime, stime} {
		n, err := strconv.ParseInt(string(fields[i]), 10, 64)
		if err != nil {
			return procSample{}, fmt.Errorf("server pid %d: stat field %d: %w", pid, i+3, err)
		}
		ticks += n
	}
	s := procSample{cpu: time.Duration(ticks) * time.Second / clockTicks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest) // "12345 kB"
			if len(f) == 2 && string(f[1]) == "kB" {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				if err == nil {
					s.rss = kb << 10
				}
			}
		}
	}
	return s, nil
}

// selfCPU is this process's user+system CPU time, from getrusage (finer
// than /proc's 10 ms ticks).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
