package kloud

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// reapOrphans kills what a previous life of this server left running in
// its Terraform working directories: after a crash or kill -9, Terraform
// and its provider plugins keep running with nobody reading their output
// and would race the next run on the same directory. They are found by
// their working directory (Linux /proc); elsewhere nothing is done.
func reapOrphans(workRoot string, log *slog.Logger) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	root, err := filepath.Abs(workRoot)
	if err != nil {
		return 0
	}
	self := os.Getpid()
	killed := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != root && !strings.HasPrefix(cwd, root+string(filepath.Separator))) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed++
			log.Warn("killed a process left in a working directory by a previous run", slog.Int("pid", pid), slog.String("dir", cwd))
		}
	}
	return killed
}
