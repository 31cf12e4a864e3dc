package testenv

import (
	"fmt"
	"os"
	"strings"
)

// MemoryMiB reads a memory figure of process pid (0: this process) from
// /proc: "VmRSS" (resident now) or "VmHWM" (peak resident), in MiB; 0 when
// it cannot be read.
func MemoryMiB(pid int, field string) float64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	status, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// ResetPeakMemory restarts the kernel's count of this process's peak
// resident memory (VmHWM), so that it covers what comes next only.
func ResetPeakMemory() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
