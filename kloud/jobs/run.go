package jobs

import (
	"context"
	"log/slog"

	"github.com/kloud/kloud/internal/secretmask"
)

// Run is one job running on this replica, as its Executor sees it.
type Run struct {
	Job *Job
	// Secrets are the job's secrets (its template's variables, the agent
	// tokens of its machines): masked in its events and its error, and
	// forgotten when it ends.
	Secrets *secretmask.Masker

	engine *Engine
	cancel context.CancelCauseFunc
}

// Mask returns s with the job's secrets masked.
func (r *Run) Mask(s string) string { return r.Secrets.Mask(s) }

// Event appends one event to the job, its secrets masked.
func (r *Run) Event(ctx context.Context, kind EventKind, pct int, msg string) {
	r.engine.appendEvent(ctx, r.Job.ID, kind, pct, r.Secrets.Mask(msg))
}

// Progress records the job's percentage (never lower than it was) and
// tells followers, with msg as a progress event.
func (r *Run) Progress(ctx context.Context, pct int, msg string) {
	job := r.Job
	if pct < job.Percentage {
		pct = job.Percentage
	}
	job.Percentage = pct
	if err := r.engine.st.SetJobProgress(ctx, job.ID, r.engine.cfg.WorkerID, pct); err != nil && ctx.Err() == nil {
		r.engine.log.Error("set job progress", slog.String("job", job.ID), slog.String("error", err.Error()))
	}
	r.Event(ctx, EventProgress, pct, msg)
}
