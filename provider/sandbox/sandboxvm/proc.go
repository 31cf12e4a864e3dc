package sandboxvm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStat is what Kloud needs from /proc/<pid>/stat.
type procStat struct {
	state     byte   // R, S, D, Z, X, ...
	session   int    // session id
	startTime uint64 // clock ticks after boot; with the pid it names one process
}

// readStat reads /proc/<pid>/stat. The command name in parentheses may hold
// spaces and parentheses, so fields are counted after the last ')'.
func readStat(pid int) (procStat, bool) {
	if pid <= 0 {
		return procStat{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	// f[0] is field 3 (state); session is field 6, starttime field 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "" {
		return procStat{}, false
	}
	sid, err1 := strconv.Atoi(f[3])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], session: sid, startTime: start}, true
}

// dead reports whether a process state means the process is gone: a zombie
// has exited and only waits for its parent (in a container PID 1 may never
// reap it).
func dead(state byte) bool { return state == 'Z' || state == 'X' }

// alive reports whether pid is a live process that started at startTime
// (when startTime is not zero), so a reused pid is not mistaken for the
// agent. A zombie that is this process's child is reaped on the way.
func alive(pid int, startTime uint64) bool {
	st, ok := readStat(pid)
	if !ok {
		return false
	}
	if startTime != 0 && st.startTime != startTime {
		return false
	}
	if dead(st.state) {
		reap(pid)
		return false
	}
	return true
}

// reap collects pid's exit status if it is an exited child of this process;
// for anyone else's process it does nothing.
func reap(pid int) {
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// sessionMembers lists the live processes of session sid.
func sessionMembers(sid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && st.session == sid && !dead(st.state) {
			out = append(out, pid)
		}
	}
	return out
}

// killSession sends SIGKILL to every live process of session sid (the
// agent's machine) and waits until they are gone or the deadline passes.
func killSession(sid int, deadline time.Time) {
	for {
		members := sessionMembers(sid)
		if len(members) == 0 {
			return
		}
		for _, pid := range members {
			syscall.Kill(pid, syscall.SIGKILL)
			reap(pid)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killInDir kills, with their sessions, the processes whose working
// directory is dir or below it: a machine's own processes. It finds an
// agent whose pid never reached machine.json (its starter was killed between
// the spawn and the record).
func killInDir(dir string, deadline time.Time) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil {
			continue
		}
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd != dir && !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		syscall.Kill(pid, syscall.SIGKILL)
		reap(pid)
		killSession(pid, deadline)
	}
}
