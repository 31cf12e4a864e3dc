package kloud

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrDataDirInUse is returned by New when another server holds the data
// dir's lock.
// The message reads "data dir X is in use by another kloud server (pid N)".
var ErrDataDirInUse = errors.New("in use by another kloud server")

// dataDirLock is the flock on <data-dir>/kloud.lock that makes one server
// the only one on its data dir: a second one would take the first one's
// Terraform runs for orphans and kill them. The kernel drops the lock when
// the holder dies, so a crashed server never blocks the next start.
type dataDirLock struct{ f *os.File }

// LockFile is the name of the lock file in the data dir.
const LockFile = "kloud.lock"

// lockDataDir takes the data dir's lock, or fails naming the pid of the
// server holding it.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "unknown pid"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("data dir %s is %w (%s)", dir, ErrDataDirInUse, holder)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// release drops the lock; the file stays for the next server.
func (l *dataDirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
