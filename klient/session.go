package klient

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopSession stops every other process in the agent's session when the
// agent leads that session (a sandbox machine's agent is started with
// setsid, so its session is the machine): SIGTERM, then SIGKILL for those
// still alive after grace. It returns how many processes it signalled. An
// agent that does not lead its session (run from a shell or a test) touches
// nothing.
func stopSession(ctx context.Context, grace time.Duration) int {
	self := os.Getpid()
	if sid, ok := sessionOf(self); !ok || sid != self {
		return 0
	}
	members := sessionMembers(self)
	for _, pid := range members {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	if len(members) == 0 {
		return 0
	}
	deadline := time.Now().Add(grace)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(sessionMembers(self)) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-tick.C:
		}
	}
	for _, pid := range sessionMembers(self) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(members)
}

// sessionMembers lists the live (not zombie) processes of session sid other
// than the session leader.
func sessionMembers(sid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sid {
			continue
		}
		st, ok := readStat(pid)
		if ok && st.session == sid && st.state != 'Z' && st.state != 'X' {
			out = append(out, pid)
		}
	}
	return out
}

func sessionOf(pid int) (int, bool) {
	st, ok := readStat(pid)
	return st.session, ok
}

type procStat struct {
	state   byte
	session int
}

// readStat reads state and session from /proc/<pid>/stat; the command name
// in parentheses may hold spaces, so fields are counted after the last ')'.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] state, f[1] ppid, f[2] pgrp, f[3] session
	if len(f) < 4 || len(f[0]) == 0 {
		return procStat{}, false
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], session: sid}, true
}
