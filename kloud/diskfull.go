package kloud

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/kloud/kloud/store"
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

// finishJob records a job's end. A write that fails (a full disk, a store
// that is briefly away) is retried with backoff for as long as the lease
// is ours, renewing it between tries, so the job's true end is what gets
// recorded, not "its worker stopped renewing its lease". It gives up when
// another replica or the expiry pass took the job.
func (s *Server) finishJob(log *slog.Logger, job *store.Job, status store.JobStatus, msg string) {
	ctx := context.Background()
	deadline := time.Now().Add(s.cfg.JobLease)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.st.FinishJob(ctx, job.ID, s.cfg.WorkerID, status, msg, s.now())
		if err == nil {
			if attempt > 1 {
				log.Info("job end recorded after retries", slog.Int("attempts", attempt))
			}
			return
		}
		if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || time.Now().After(deadline) {
			log.Error("finish job", slog.String("error", err.Error()), slog.Int("attempts", attempt))
			return
		}
		log.Warn("finish job; retrying", slog.String("error", err.Error()), slog.Duration("backoff", backoff))
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		switch rerr := s.st.RenewJobLease(ctx, job.ID, s.cfg.WorkerID, s.now(), s.cfg.JobLease); {
		case rerr == nil:
			deadline = time.Now().Add(s.cfg.JobLease)
		case errors.Is(rerr, store.ErrLeaseHeld) || errors.Is(rerr, store.ErrNotFound):
			log.Error("finish job: the lease is lost", slog.String("error", err.Error()))
			return
		}
	}
}
