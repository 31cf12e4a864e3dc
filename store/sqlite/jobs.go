package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

// ---- jobs ---------------------------------------------------------------------

const jobCols = `id, kind, owner_id, target, stack_id, machine_id, credential_id, status, percentage, error, worker, lease_expires, created_at, started_at, finished_at, cancel_reason`

func scanJob(sc scanner) (*jobs.Job, error) {
	var j jobs.Job
	var kind, status string
	var lease, started, finished sql.NullInt64
	var created int64
	if err := sc.Scan(&j.ID, &kind, &j.OwnerID, &j.Target, &j.StackID, &j.MachineID, &j.CredentialID, &status, &j.Percentage, &j.Error, &j.Worker, &lease, &created, &started, &finished, &j.CancelReason); err != nil {
		return nil, err
	}
	j.Kind, j.Status = jobs.Kind(kind), jobs.Status(status)
	j.LeaseExpires, j.StartedAt, j.FinishedAt = fromNull(lease), fromNull(started), fromNull(finished)
	j.CreatedAt = store.FromNanos(created)
	return &j, nil
}

// CreateJob queues a job; an active job on the same Target is an
// *jobs.ActiveJobError.
func (s *Store) CreateJob(ctx context.Context, j *jobs.Job) error {
	w, err := store.CheckNewJob(j, s.now())
	if err != nil {
		return err
	}
	id, created, cn := w.ID, w.CreatedAt, w.Created
	err = s.write(ctx, func(tx *sql.Tx) error {
		var active string
		err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE target = ? AND status IN ('queued', 'running')`, j.Target).Scan(&active)
		switch {
		case err == nil:
			return &jobs.ActiveJobError{JobID: active, Target: j.Target}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO jobs (id, kind, owner_id, target, stack_id, machine_id, credential_id, status, percentage, error, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, '', ?)`,
			id, string(j.Kind), j.OwnerID, j.Target, j.StackID, j.MachineID, j.CredentialID, cn)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create job %s: %w", id, err)
	}
	store.SetQueued(j, id, created)
	return nil
}

// GetJob returns the job with id.
func (s *Store) GetJob(ctx context.Context, id string) (*jobs.Job, error) {
	if err := store.CheckKey("get job", "id", id); err != nil {
		return nil, err
	}
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get job: %w", noRows(err, "job "+id))
	}
	return j, nil
}

// ListJobs returns jobs of the given statuses (all when none), oldest first.
func (s *Store) ListJobs(ctx context.Context, statuses ...jobs.Status) ([]*jobs.Job, error) {
	if err := store.CheckJobStatuses(statuses); err != nil {
		return nil, err
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	var args []any
	if len(statuses) > 0 {
		marks := make([]string, len(statuses))
		for i, st := range statuses {
			marks[i] = "?"
			args = append(args, string(st))
		}
		q += ` WHERE status IN (` + strings.Join(marks, ", ") + `)`
	}
	out, err := list(ctx, s.r, scanJob, q+` ORDER BY created_at, rowid`, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// ClaimJob atomically moves the oldest queued job to running for worker,
// leased until now+lease. With maxPerOwner > 0, jobs of owners that already
// run maxPerOwner jobs are skipped: the count and the claim are one
// statement in the write transaction, so the cap is exact.
func (s *Store) ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration, maxPerOwner int) (*jobs.Job, error) {
	lt, err := store.CheckClaim(worker, s.nowOr(now), lease, maxPerOwner)
	if err != nil {
		return nil, err
	}
	nn, ln := lt.Now, lt.Expires
	var j *jobs.Job
	err = s.write(ctx, func(tx *sql.Tx) error {
		j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'running', worker = ?1, lease_expires = ?2, started_at = ?3
			WHERE id = (SELECT id FROM jobs q WHERE status = 'queued'
				AND (?4 = 0 OR (SELECT count(*) FROM jobs r WHERE r.status = 'running' AND r.owner_id = q.owner_id) < ?4)
				ORDER BY created_at, rowid LIMIT 1)
			RETURNING `+jobCols, worker, ln, nn, maxPerOwner))
		return noRows(err, "queued job")
	})
	if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	return j, nil
}

// heldJob updates a running job worker holds; it tells a missing job
// (ErrNotFound) from one not running under worker (ErrLeaseHeld).
func heldJob(ctx context.Context, tx *sql.Tx, id, worker, set string, args ...any) error {
	res, err := tx.ExecContext(ctx, `UPDATE jobs SET `+set+` WHERE id = ? AND worker = ? AND status = 'running'`,
		append(args, id, worker)...)
	if err != nil {
		return mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var status, holder string
	if err := tx.QueryRowContext(ctx, `SELECT status, worker FROM jobs WHERE id = ?`, id).Scan(&status, &holder); err != nil {
		return noRows(err, "job "+id)
	}
	if status != string(jobs.StatusRunning) {
		return fmt.Errorf("job %s is %s, not running under %s: %w", id, status, worker, store.ErrLeaseHeld)
	}
	return fmt.Errorf("job %s runs under %s, not %s: %w", id, holder, worker, store.ErrLeaseHeld)
}

// RenewJobLease extends the lease of a running job worker holds to now+lease.
func (s *Store) RenewJobLease(ctx context.Context, id, worker string, now time.Time, lease time.Duration) error {
	ln, err := store.CheckRenew(id, worker, s.nowOr(now), lease)
	if err != nil {
		return err
	}
	var reason string
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := heldJob(ctx, tx, id, worker, `lease_expires = ?`, ln); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT cancel_reason FROM jobs WHERE id = ?`, id).Scan(&reason)
	})
	if err != nil {
		return fmt.Errorf("renew job %s lease: %w", id, err)
	}
	if reason != "" {
		// The renewal is committed: the worker holds the job while it stops.
		return fmt.Errorf("renew job %s lease: %s: %w", id, reason, store.ErrJobCancelled)
	}
	return nil
}

// CancelJob fails a queued job at once with reason, or marks a running one
// with it for its worker; both in one write transaction, so no worker can
// claim a queued job after it was cancelled.
func (s *Store) CancelJob(ctx context.Context, id, reason string, at time.Time) (*jobs.Job, error) {
	an, err := store.CheckCancel(id, reason, s.nowOr(at))
	if err != nil {
		return nil, err
	}
	var j *jobs.Job
	err = s.write(ctx, func(tx *sql.Tx) error {
		cur, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
		if err != nil {
			return noRows(err, "job "+id)
		}
		switch cur.Status {
		case jobs.StatusQueued:
			j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?
				WHERE id = ? AND status = 'queued' RETURNING `+jobCols, reason, an, id))
			return err
		case jobs.StatusRunning:
			j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET cancel_reason = CASE cancel_reason WHEN '' THEN ? ELSE cancel_reason END
				WHERE id = ? RETURNING `+jobCols, reason, id))
			return err
		}
		return fmt.Errorf("job %s is %s; only queued or running jobs can be cancelled: %w", id, cur.Status, store.ErrConflict)
	})
	if err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return j, nil
}

// SetJobProgress records the percentage (0–100) of a running job worker
// holds.
func (s *Store) SetJobProgress(ctx context.Context, id, worker string, percentage int) error {
	if err := store.CheckProgress(id, worker, percentage); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return heldJob(ctx, tx, id, worker, `percentage = ?`, percentage)
	})
	if err != nil {
		return fmt.Errorf("set job %s progress: %w", id, err)
	}
	return nil
}

// FinishJob ends a running job worker holds as succeeded or failed at at
// (now when zero).
func (s *Store) FinishJob(ctx context.Context, id, worker string, status jobs.Status, errMsg string, at time.Time) error {
	an, err := store.CheckFinish(id, worker, status, s.nowOr(at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		return heldJob(ctx, tx, id, worker, `status = ?, error = ?, finished_at = ?`, string(status), errMsg, an)
	})
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}

// FailExpiredJobs fails every running job whose lease ended before now, with
// reason as its error, and returns them.
func (s *Store) FailExpiredJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error) {
	nn, err := store.UnixNanos("now", s.nowOr(now))
	if err != nil {
		return nil, fmt.Errorf("fail expired jobs: %w", err)
	}
	var out []*jobs.Job
	err = s.write(ctx, func(tx *sql.Tx) error {
		out, err = list(ctx, tx, scanJob, `UPDATE jobs SET status = 'failed', error = ?1, finished_at = ?2
			WHERE status = 'running' AND lease_expires < ?2 RETURNING `+jobCols, reason, nn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fail expired jobs: %w", err)
	}
	return out, nil
}

// FailRunningJobs fails every running job, whatever its lease, with reason
// as its error, and returns them.
func (s *Store) FailRunningJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error) {
	nn, err := store.UnixNanos("now", s.nowOr(now))
	if err != nil {
		return nil, fmt.Errorf("fail running jobs: %w", err)
	}
	var out []*jobs.Job
	err = s.write(ctx, func(tx *sql.Tx) error {
		out, err = list(ctx, tx, scanJob, `UPDATE jobs SET status = 'failed', error = ?1, finished_at = ?2
			WHERE status = 'running' RETURNING `+jobCols, reason, nn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fail running jobs: %w", err)
	}
	return out, nil
}

// ---- events -------------------------------------------------------------------

func scanEvent(sc scanner) (*jobs.Event, error) {
	var e jobs.Event
	var kind string
	var at int64
	if err := sc.Scan(&e.JobID, &e.Seq, &at, &kind, &e.Message, &e.Percentage); err != nil {
		return nil, err
	}
	e.Kind = jobs.EventKind(kind)
	e.At = store.FromNanos(at)
	return &e, nil
}

// AppendEvents appends events to an existing job in order, assigning each
// the next Seq (and JobID, and At when zero).
func (s *Store) AppendEvents(ctx context.Context, jobID string, events ...*jobs.Event) error {
	ats, err := store.CheckEvents(jobID, events, s.now)
	if err != nil || len(events) == 0 {
		return err
	}
	var first int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, jobID).Scan(&exists); err != nil {
			return noRows(err, "job "+jobID)
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM events WHERE job_id = ?`, jobID).Scan(&first); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (job_id, seq, at, kind, message, percentage) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, e := range events {
			if _, err := stmt.ExecContext(ctx, jobID, first+int64(i), ats[i], string(e.Kind), e.Message, e.Percentage); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append events to job %s: %w", jobID, err)
	}
	for i, e := range events {
		e.JobID, e.Seq, e.At = jobID, first+int64(i), store.FromNanos(ats[i])
	}
	return nil
}

// ListEvents returns a job's events with Seq > afterSeq in order, at most
// limit (all when limit <= 0).
func (s *Store) ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]*jobs.Event, error) {
	if err := store.CheckKey("list events", "job id", jobID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1
	}
	out, err := list(ctx, s.r, scanEvent,
		`SELECT job_id, seq, at, kind, message, percentage FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		jobID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of job %s: %w", jobID, err)
	}
	return out, nil
}

// ---- leases -------------------------------------------------------------------

// AcquireLease takes or renews name for holder until now+ttl; another
// holder's unexpired lease is ErrLeaseHeld, an expired one is taken over.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*store.Lease, error) {
	lt, err := store.CheckAcquire(name, holder, s.nowOr(now), ttl)
	if err != nil {
		return nil, err
	}
	nn, en := lt.Now, lt.Expires
	err = s.write(ctx, func(tx *sql.Tx) error {
		var cur string
		var curExp int64
		err := tx.QueryRowContext(ctx, `SELECT holder, expires FROM leases WHERE name = ?`, name).Scan(&cur, &curExp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur != holder && curExp > nn:
			return fmt.Errorf("held by %s until %s: %w", cur, store.FromNanos(curExp).Format(time.RFC3339Nano), store.ErrLeaseHeld)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3)
			ON CONFLICT (name) DO UPDATE SET holder = ?2, expires = ?3`, name, holder, en)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return &store.Lease{Name: name, Holder: holder, Expires: store.FromNanos(en)}, nil
}

// ReleaseLease gives up holder's lease; releasing one not held is a no-op.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := store.CheckLeaseHolder("release lease", name, holder); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// GetLease returns the lease record for name, expired or not.
func (s *Store) GetLease(ctx context.Context, name string) (*store.Lease, error) {
	if err := store.CheckKey("get lease", "name", name); err != nil {
		return nil, err
	}
	var l store.Lease
	var exp int64
	err := s.r.QueryRowContext(ctx, `SELECT name, holder, expires FROM leases WHERE name = ?`, name).Scan(&l.Name, &l.Holder, &exp)
	if err != nil {
		return nil, fmt.Errorf("get lease: %w", noRows(err, "lease "+name))
	}
	l.Expires = store.FromNanos(exp)
	return &l, nil
}
