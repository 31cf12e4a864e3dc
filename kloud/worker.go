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
		job, err := s.st.ClaimJob(ctx, s.cfg.WorkerID, s.now(), s.cfg.JobLease)
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
		}()
	}
}

// runJob runs one claimed job to its end under a renewed lease. The job's
// context is cancelled when Close gives up waiting or the lease is lost.
func (s *Server) runJob(job *store.Job) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	go func() {
		defer close(renewDone)
		t := time.NewTicker(s.cfg.JobLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.st.RenewJobLease(ctx, job.ID, s.cfg.WorkerID, s.now(), s.cfg.JobLease); err != nil {
					if ctx.Err() != nil {
						return
					}
					s.log.Error("renew job lease", slog.String("job", job.ID), slog.String("error", err.Error()))
					if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrNotFound) {
						close(leaseLost)
						cancel()
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
	cancel()
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
		if ctx.Err() != nil && s.isClosing() {
			msg = "interrupted by server shutdown: " + msg
		}
		s.event(context.Background(), job.ID, store.EventError, job.Percentage, msg)
		log.Warn("job failed", slog.String("error", msg))
	} else {
		log.Info("job succeeded")
	}
	s.event(context.Background(), job.ID, store.EventDone, 100, string(status))
	s.finishJob(log, job, status, msg)
	// Followers waiting for the end hear of it now, not at their next poll.
	s.events.notify(job.ID)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
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
	for _, j := range jobs {
		s.log.Warn("failed job of a dead worker", slog.String("job", j.ID), slog.String("worker", j.Worker))
		s.event(ctx, j.ID, store.EventError, j.Percentage, "worker "+j.Worker+" died; job failed")
		s.event(ctx, j.ID, store.EventDone, 100, string(store.JobFailed))
		s.recoverTarget(ctx, j, "job "+j.ID+" failed: its worker died")
	}
	return nil
}
