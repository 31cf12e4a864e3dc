package klient

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in /proc.
const clockTicks = 100

// cpuSampler measures the CPU time the processes the agent can see used
// between two samples: on a sandbox machine (its own PID namespace) that
// is the machine's processes, on a cloud machine every process.
type cpuSampler struct {
	mu    sync.Mutex
	at    time.Time
	ticks int64
}

// busy reports whether CPU use since the last call exceeded percent (of
// one core); percent <= 0 is never.
func (c *cpuSampler) busy(percent float64) bool {
	if percent <= 0 {
		return false
	}
	now, ticks := time.Now(), cpuTicks()
	c.mu.Lock()
	defer c.mu.Unlock()
	prevAt, prev := c.at, c.ticks
	c.at, c.ticks = now, ticks
	if prevAt.IsZero() || ticks < prev {
		return false
	}
	wall := now.Sub(prevAt).Seconds()
	if wall <= 0 {
		return false
	}
	used := float64(ticks-prev) / clockTicks
	return used/wall*100 > percent
}

// cpuTicks sums user and system time of every visible process.
func cpuTicks() int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[11] utime, f[12] stime (fields 14 and 15 of stat)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + st
	}
	return total
}
