package kloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kloud/kloud/store"
)

// hub tells followers of a job's events that new ones were appended in this
// process; followers of jobs running on other replicas fall back to polling.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[chan struct{}]struct{})} }

func (h *hub) subscribe(jobID string) (ch chan struct{}, cancel func()) {
	ch = make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[jobID] == nil {
		h.subs[jobID] = make(map[chan struct{}]struct{})
	}
	h.subs[jobID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[jobID], ch)
		if len(h.subs[jobID]) == 0 {
			delete(h.subs, jobID)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(jobID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[jobID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// enqueue persists a job and wakes a worker. An active job on the same
// target is a 409 naming it.
func (s *Server) enqueue(ctx context.Context, j *store.Job) (*store.Job, error) {
	j.Status = store.JobQueued
	j.CreatedAt = s.now()
	if err := s.st.CreateJob(ctx, j); err != nil {
		return nil, fmt.Errorf("queue %s job: %w", j.Kind, err)
	}
	s.event(ctx, j.ID, store.EventPhase, 0, "queued "+string(j.Kind))
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return j, nil
}

// event appends one event to a job and tells its followers. Failing to
// record an event is logged, never fatal to the job.
func (s *Server) event(ctx context.Context, jobID string, kind store.EventKind, pct int, msg string) {
	ev := &store.Event{JobID: jobID, At: s.now(), Kind: kind, Message: s.mask(msg), Percentage: pct}
	if err := s.st.AppendEvents(context.WithoutCancel(ctx), jobID, ev); err != nil {
		s.log.Error("append job event", slog.String("job", jobID), slog.String("error", err.Error()))
		return
	}
	s.events.notify(jobID)
}

// workLoop claims queued jobs while a worker slot is free. Pickup is driven
// by wake (a job queued here); the slow tick only finds jobs queued by other
// replicas.
func (s *Server) workLoop(ctx context.Context) {
	slots := make(chan struct{}, s.cfg.Workers)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		job, err := s.st.ClaimJob(ctx, s.cfg.WorkerID, s.now(), s.cfg.JobLease, s.cfg.MaxJobsPerOwner)
		if err != nil {
			<-slots
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				s.log.Error("claim job", slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			case <-tick.C:
			}
			continue
		}
		s.jobsDone.Add(1)
		go func() {
			defer func() { <-slots }()
			defer s.jobsDone.Done()
			s.runJob(job)
			// A slot is free, and the owner may be below its cap again: a
			// job skipped for fair share can be claimed now.
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}()
	}
}

// runJob runs one claimed job to its end under a renewed lease. The job's
// context ends, with a stopCause saying why, when its timeout passes, when
// it is cancelled (here, or on another replica through the store), when
// Close gives up waiting, or when the lease is lost.
func (s *Server) runJob(job *store.Job) {
	timeout := s.cfg.JobTimeout.For(string(job.Kind))
	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ctx, stopTimer := context.WithTimeoutCause(base, timeout, timedOut(timeout, string(job.Kind)))
	defer stopTimer()
	s.mu.Lock()
	s.running[job.ID] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, job.ID)
		s.mu.Unlock()
	}()

	leaseLost := make(chan struct{})
	renewDone := make(chan struct{})
	workDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		t := time.NewTicker(s.cfg.JobLease / 3)
		defer t.Stop()
		for {
			select {
			case <-workDone:
				return
			case <-t.C:
				// Renewals go on while a cancelled or timed-out job stops:
				// the worker keeps the job until it has finished it.
				if err := s.st.RenewJobLease(context.WithoutCancel(ctx), job.ID, s.cfg.WorkerID, s.now(), s.cfg.JobLease); err != nil {
					if errors.Is(err, store.ErrJobCancelled) {
						s.cancelRunning(job.ID, s.cancelReason(job.ID))
						continue
					}
					s.log.Error("renew job lease", slog.String("job", job.ID), slog.String("error", err.Error()))
					if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrNotFound) {
						close(leaseLost)
						cancel(errLeaseLost)
						return
					}
				}
			}
		}
	}()

	log := s.log.With(slog.String("job", job.ID), slog.String("kind", string(job.Kind)))
	log.Info("job started")
	s.event(ctx, job.ID, store.EventPhase, 0, "running "+string(job.Kind)+" on "+s.cfg.WorkerID)
	err := s.execute(ctx, job)
	stopped, isStopped := stopReason(ctx)
	close(workDone)
	<-renewDone
	select {
	case <-leaseLost:
		log.Warn("job lease lost; another replica owns the job now")
		return
	default:
	}
	status, msg := store.JobSucceeded, ""
	if err != nil {
		status, msg = store.JobFailed, jobReason(err, s.mask(err.Error()))
		event := msg
		if isStopped {
			// The reason is the job's error; the event adds what the work
			// said on its way out.
			event, msg = stopped+" ("+msg+")", stopped
		}
		s.event(context.Background(), job.ID, store.EventError, job.Percentage, event)
		log.Warn("job failed", slog.String("error", msg))
	} else {
		log.Info("job succeeded")
	}
	s.event(context.Background(), job.ID, store.EventDone, 100, string(status))
	s.finishJob(log, job, status, msg)
	// Followers waiting for the end hear of it now, not at their next poll.
	s.events.notify(job.ID)
}

// stopCause is why a job's (or a plan's) context ended before its work did:
// its timeout, a cancel, the server's shutdown, a lost lease. Its text is
// the job's error.
type stopCause struct{ reason string }

func (c *stopCause) Error() string { return c.reason }

var (
	errLeaseLost = &stopCause{"the job's lease was lost; another replica owns the job now"}
	errShutdown  = &stopCause{"interrupted by server shutdown"}
)

func timedOut(d time.Duration, kind string) error {
	return &stopCause{fmt.Sprintf("timed out after %s (job timeout for %s)", d, kind)}
}

// stopReason returns why ctx was stopped, when a stopCause ended it.
func stopReason(ctx context.Context) (string, bool) {
	var c *stopCause
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &c) {
		return c.reason, true
	}
	return "", false
}

// cancelRunning stops a job running on this replica with reason; false when
// it does not run here.
func (s *Server) cancelRunning(jobID, reason string) bool {
	s.mu.Lock()
	cancel, ok := s.running[jobID]
	s.mu.Unlock()
	if ok {
		cancel(&stopCause{reason})
	}
	return ok
}

// cancelJob cancels a job for actor: a queued job is failed at once; a
// running one is stopped here when it runs here, and through the store
// (its worker's next lease renewal) when it runs on another replica. It
// returns the job as it is now.
func (s *Server) cancelJob(ctx context.Context, actor *store.User, jobID string) (*store.Job, error) {
	who := actor.Name
	if who == "" {
		who = actor.ID
	}
	reason := "cancelled by " + who
	j, err := s.st.CancelJob(ctx, jobID, reason, s.now())
	if err != nil {
		return nil, err
	}
	switch j.Status {
	case store.JobFailed:
		// It never ran: nothing to stop, its target was never touched.
		s.event(ctx, j.ID, store.EventError, j.Percentage, j.Error)
		s.event(ctx, j.ID, store.EventDone, 100, string(store.JobFailed))
		s.events.notify(j.ID)
	case store.JobRunning:
		s.cancelRunning(j.ID, j.CancelReason)
	}
	return j, nil
}

// cancelReason reads the reason a job was cancelled with in the store.
func (s *Server) cancelReason(jobID string) string {
	j, err := s.st.GetJob(context.Background(), jobID)
	if err != nil || j.CancelReason == "" {
		return "cancelled"
	}
	return j.CancelReason
}

// progress records a running job's percentage and tells followers.
func (s *Server) progress(ctx context.Context, job *store.Job, pct int, msg string) {
	if pct < job.Percentage {
		pct = job.Percentage
	}
	job.Percentage = pct
	if err := s.st.SetJobProgress(ctx, job.ID, s.cfg.WorkerID, pct); err != nil && ctx.Err() == nil {
		s.log.Error("set job progress", slog.String("job", job.ID), slog.String("error", err.Error()))
	}
	s.event(ctx, job.ID, store.EventProgress, pct, msg)
}

// expiryLoop fails jobs whose worker died (its lease expired), on this or
// any replica, about once per lease length.
func (s *Server) expiryLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.JobLease / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.failExpiredJobs(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("fail expired jobs", slog.String("error", err.Error()))
			}
		}
	}
}

// failExpiredJobs fails the jobs whose lease ran out and puts what they were
// working on back in a state that allows trying again. The stack's
// Terraform state stays as the last run saved it.
func (s *Server) failExpiredJobs(ctx context.Context) error {
	jobs, err := s.st.FailExpiredJobs(ctx, s.now(), "the worker running this job stopped renewing its lease (crashed, killed, or unable to write to the store); the job was failed and can be run again")
	if err != nil {
		return err
	}
	s.recoverDeadJobs(ctx, jobs)
	return nil
}

// failDeadJobsAtStart fails, when this server is the store's sole user,
// every job still running: its worker was this server's previous run. Other
// servers' jobs (replicas on one database) wait for their lease to expire.
func (s *Server) failDeadJobsAtStart(ctx context.Context) error {
	if !s.cfg.SoleServer {
		return s.failExpiredJobs(ctx)
	}
	jobs, err := s.st.FailRunningJobs(ctx, s.now(), "the server running this job stopped (crashed or killed) before it ended; the job was failed at the next start and can be run again")
	if err != nil {
		return fmt.Errorf("fail jobs of the previous run: %w", err)
	}
	s.recoverDeadJobs(ctx, jobs)
	return nil
}

// recoverDeadJobs records the end of jobs whose worker died and frees
// their targets.
func (s *Server) recoverDeadJobs(ctx context.Context, jobs []*store.Job) {
	for _, j := range jobs {
		s.log.Warn("failed job of a dead worker", slog.String("job", j.ID), slog.String("worker", j.Worker))
		s.event(ctx, j.ID, store.EventError, j.Percentage, "worker "+j.Worker+" died; job failed")
		s.event(ctx, j.ID, store.EventDone, 100, string(store.JobFailed))
		s.recoverTarget(ctx, j, "job "+j.ID+" failed: its worker died")
	}
}
