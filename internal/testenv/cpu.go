package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time (user and system, every thread, garbage
// collection included) this process has used: on a shared machine a
// benchmark's wall time includes waiting for a core, its CPU time does not.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
