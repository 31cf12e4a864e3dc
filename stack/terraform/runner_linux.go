package terraform

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// terraformGroups returns the process groups of the Terraform processes this
// process runs in dir. tfexec starts Terraform as the leader of its own
// process group (Setpgid), so its pid is the group's id; a provisioner's
// children and provider plugins are in that group unless they leave it.
func terraformGroups(dir string) []int {
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var groups []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ok := procParent(pid)
		if !ok || ppid != self || pgrp != pid {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err != nil || cwd != dir {
			continue
		}
		groups = append(groups, pid)
	}
	return groups
}

// procParent reads a process's parent and process group from
// /proc/<pid>/stat.
func procParent(pid int) (ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return ppid, pgrp, err1 == nil && err2 == nil
}

// killGroups sends SIGKILL to every process of the given groups.
func killGroups(groups []int) {
	own := syscall.Getpgrp()
	for _, g := range groups {
		if g <= 1 || g == own {
			continue
		}
		_ = syscall.Kill(-g, syscall.SIGKILL) // ESRCH: the group is gone already
	}
}

// processAlive reports whether a process exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
