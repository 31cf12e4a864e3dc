package jobs

import (
	"context"
	"log/slog"
	"sync"

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
	output outputQueue
}

// outputQueue holds the output lines a run gave and the store has not yet:
// one goroutine appends what gathered while its last append ran, in one
// write, so a chatty Terraform costs a few store writes, not one a line,
// and never waits on the store.
type outputQueue struct {
	mu      sync.Mutex
	pending []*Event
	writing bool          // the writer goroutine is running
	idle    chan struct{} // closed when the writer has written all and stopped
}

// Mask returns s with the job's secrets masked.
func (r *Run) Mask(s string) string { return r.Secrets.Mask(s) }

// Event appends one event to the job, its secrets masked, after the
// output lines given before it.
func (r *Run) Event(ctx context.Context, kind EventKind, pct int, msg string) {
	msg = r.Secrets.Mask(msg)
	r.FlushOutput()
	r.engine.appendEvent(ctx, r.Job.ID, kind, pct, msg)
	r.engine.cfg.Observer.JobEvent(r.Job, kind, msg, r.engine.now())
}

// Output queues one line of the work's output as an output event, its
// secrets masked, stamped now; it is stored in order, with the lines queued
// while the previous write ran, without waiting for the store.
func (r *Run) Output(line string) {
	line = r.Secrets.Mask(line)
	now := r.engine.now()
	ev := &Event{JobID: r.Job.ID, At: now, Kind: EventOutput, Message: line, Percentage: r.Job.Percentage}
	r.engine.cfg.Observer.JobEvent(r.Job, EventOutput, line, now)
	q := &r.output
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, ev)
	if !q.writing {
		q.writing, q.idle = true, make(chan struct{})
		go r.writeOutput()
	}
}

// writeOutput appends the queued lines, a batch at a time, until none is
// left.
func (r *Run) writeOutput() {
	q := &r.output
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.writing = false
			close(q.idle)
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		r.engine.appendEvents(r.Job.ID, batch)
	}
}

// FlushOutput waits until every output line queued so far is stored.
func (r *Run) FlushOutput() {
	q := &r.output
	q.mu.Lock()
	idle := q.idle
	writing := q.writing
	q.mu.Unlock()
	if writing {
		<-idle
	}
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
