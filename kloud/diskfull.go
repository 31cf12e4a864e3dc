package kloud

import (
	"errors"
	"strings"
	"syscall"
)

// diskFullCause returns what filled up when err comes from a full disk:
// ENOSPC from a file write (or in a child's words), SQLite's SQLITE_FULL ("database or disk is
// full") or MongoDB's OutOfDiskSpace; "" otherwise.
func diskFullCause(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ENOSPC), strings.Contains(err.Error(), "no space left on device"):
		// The text too: Terraform and plugins report it in their output.
		return "no space left on device"
	case strings.Contains(err.Error(), "database or disk is full"):
		return "database or disk is full"
	case strings.Contains(err.Error(), "OutOfDiskSpace"):
		return "the database server is out of disk space"
	}
	return ""
}

// IsDiskFull reports whether err comes from a full disk.
func IsDiskFull(err error) bool { return diskFullCause(err) != "" }

// jobReason is the reason a failed job records: its error, said to be the
// disk's fault when it was.
func jobReason(err error, msg string) string {
	if cause := diskFullCause(err); cause != "" {
		return "the server's disk is full (" + cause + "): " + msg
	}
	return msg
}
