package kloud

import (
	"context"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/kloud/jobs"
)

// newEngine is the server's job engine: jobs in the server's store, run by
// execute, their dead workers' targets recovered by recoverTarget.
func (s *Server) newEngine() (*jobs.Engine, error) {
	cfg := s.cfg
	return jobs.New(jobs.Config{
		Store:       s.st,
		Exec:        s.executeNotified,
		Recover:     s.recoverTarget,
		Reason:      jobReason,
		Log:         s.log,
		WorkerID:    cfg.WorkerID,
		Workers:     cfg.Workers,
		Lease:       cfg.JobLease,
		MaxPerOwner: cfg.MaxJobsPerOwner,
		Timeout:     cfg.JobTimeout.For,
		SoleServer:  cfg.SoleServer,
		Now:         cfg.Now,
	})
}

// enqueue persists a job and wakes a worker. An active job on the same
// target is a 409 naming it.
func (s *Server) enqueue(ctx context.Context, j *jobs.Job) (*jobs.Job, error) {
	return s.engine.Enqueue(ctx, j)
}

// event appends one event to a job and tells its followers.
func (s *Server) event(ctx context.Context, jobID string, kind jobs.EventKind, pct int, msg string) {
	s.engine.Event(ctx, jobID, kind, pct, msg)
}

// cancelJob cancels a job for actor (see jobs.Engine.Cancel).
func (s *Server) cancelJob(ctx context.Context, actor *user.User, jobID string) (*jobs.Job, error) {
	who := actor.Name
	if who == "" {
		who = actor.ID
	}
	return s.engine.Cancel(ctx, jobID, who)
}
