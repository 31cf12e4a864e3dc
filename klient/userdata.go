package klient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// UserDataStatus says where the machine's first-boot script is.
type UserDataStatus string

// The user data statuses.
const (
	UserDataPending     UserDataStatus = "pending"     // not looked at yet
	UserDataNone        UserDataStatus = "none"        // the machine has no script
	UserDataRunning     UserDataStatus = "running"     // running now
	UserDataDone        UserDataStatus = "done"        // ran and exited 0 (now or on an earlier boot)
	UserDataFailed      UserDataStatus = "failed"      // ran and exited non-zero
	UserDataInterrupted UserDataStatus = "interrupted" // the agent stopped while it ran; it runs again at next boot
)

// runUserData runs the machine's user_data.sh with sh, in the machine
// directory, output appended to user_data.log, unless user_data.done says
// it already ran. It records user_data.done (holding the exit code) when the
// script finishes, whatever its exit code, so a restart does not run it
// again. Stopping the agent stops the script (its whole process group) and
// leaves no done marker.
func (a *Agent) runUserData(ctx context.Context) {
	dir := a.cfg.Dir
	log := a.cfg.Log
	donePath := filepath.Join(dir, UserDataDoneFile)
	if b, err := os.ReadFile(donePath); err == nil {
		code := parseExitCode(b)
		a.setUserData(statusFor(code), &code)
		return
	}
	script := filepath.Join(dir, UserDataFile)
	if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
		a.setUserData(UserDataNone, nil)
		return
	}
	out, err := os.OpenFile(filepath.Join(dir, UserDataLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.Error("user data not run: open log", "err", err)
		code := -1
		a.setUserData(UserDataFailed, &code)
		return
	}
	defer out.Close()

	a.setUserData(UserDataRunning, nil)
	log.Info("running user data", "script", script)
	cmd := exec.CommandContext(ctx, "sh", UserDataFile)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(scrubEnv(os.Environ()),
		"KLOUD_MACHINE_ID="+a.cfg.MachineID,
		"KLOUD_MACHINE_DIR="+dir,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The script and whatever it started share its process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = a.cfg.ShutdownTimeout
	err = cmd.Run()
	if ctx.Err() != nil {
		// Whatever the script left in its group goes too.
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		log.Warn("user data interrupted by shutdown; it runs again at next boot")
		a.setUserData(UserDataInterrupted, nil)
		return
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			fmt.Fprintf(out, "klient: run user data: %v\n", err)
		}
	}
	record := fmt.Sprintf("%d\n%s\n", code, a.cfg.Now().UTC().Format(time.RFC3339))
	if err := writeFileAtomic(donePath, []byte(record), 0o600); err != nil {
		log.Error("record user data done", "err", err)
	}
	log.Info("user data finished", "exit_code", code)
	a.setUserData(statusFor(code), &code)
}

func (a *Agent) setUserData(s UserDataStatus, code *int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.userData, a.exitCode = s, code
}

func statusFor(code int) UserDataStatus {
	if code == 0 {
		return UserDataDone
	}
	return UserDataFailed
}

// parseExitCode reads the exit code on the first line of a done marker; a
// marker without one counts as a success (it ran).
func parseExitCode(b []byte) int {
	line, _, _ := strings.Cut(string(b), "\n")
	code, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return code
}

// scrubEnv drops the agent's own settings, the token above all, from the
// environment a user script sees.
func scrubEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "KLIENT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
