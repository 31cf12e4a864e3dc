// Package jobs is Kloud's job engine: long operations (apply, destroy,
// bootstrap, start, stop) persisted as jobs, claimed by workers under a
// renewed lease with a fair share per owner, run under a timeout and a
// cancel, their progress kept as events and streamed to followers, and the
// jobs of dead workers failed. What a job does is the Executor's business.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kloud/kloud/errdefs"
	"github.com/kloud/kloud/internal/secretmask"
)

// Store is what the engine keeps in the store: jobs and their events.
type Store interface {
	CreateJob(ctx context.Context, j *Job) error
	GetJob(ctx context.Context, id string) (*Job, error)
	ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration, maxPerOwner int) (*Job, error)
	RenewJobLease(ctx context.Context, id, worker string, now time.Time, lease time.Duration) error
	CancelJob(ctx context.Context, id, reason string, at time.Time) (*Job, error)
	SetJobProgress(ctx context.Context, id, worker string, percentage int) error
	FinishJob(ctx context.Context, id, worker string, status Status, errMsg string, at time.Time) error
	FailExpiredJobs(ctx context.Context, now time.Time, reason string) ([]*Job, error)
	FailRunningJobs(ctx context.Context, now time.Time, reason string) ([]*Job, error)
	AppendEvents(ctx context.Context, jobID string, events ...*Event) error
	ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]*Event, error)
}

// Executor does a claimed job's work. It reports progress and output
// through run, and adds the job's secrets to run.Secrets as it learns them.
// ctx ends when the job is cancelled, times out, the server shuts down or
// the lease is lost (StopReason says which).
type Executor func(ctx context.Context, run *Run) error

// Config is what an Engine needs. Store, Exec and WorkerID are required;
// the rest has defaults.
type Config struct {
	Store Store
	Exec  Executor
	// Recover puts what a job whose worker died held (its stack or
	// machine) back in a state that allows trying again.
	Recover func(ctx context.Context, j *Job, reason string)
	// Reason is the reason a failed job records, from its error and the
	// error's masked message (default: the message).
	Reason func(err error, msg string) string
	Log    *slog.Logger

	WorkerID    string                          // names this server in leases
	Workers     int                             // jobs run at once (default 4)
	Lease       time.Duration                   // a claim's lease between renewals (default 30s)
	MaxPerOwner int                             // one owner's jobs running at once, over all replicas (default 1)
	Timeout     func(kind string) time.Duration // each job's bound (nil or 0: none)
	// SoleServer says no other server uses the store: at start, every job
	// still running was this server's previous run's.
	SoleServer bool
	// Observer hears of jobs queued, started and finished here (metrics);
	// nil hears nothing.
	Observer Observer

	// Now is the clock (default time.Now); NewTicker makes the tickers of
	// the loops (default time.NewTicker), so tests drive them by channel.
	Now       func() time.Time
	NewTicker func(d time.Duration) (c <-chan time.Time, stop func())
	// ClaimPoll is how often a worker looks for jobs queued by other
	// replicas (default 1s; jobs queued here are claimed at once).
	ClaimPoll time.Duration
	// FollowPoll is how often a follower reads the events of a job running
	// on another replica (default 500ms).
	FollowPoll time.Duration
	// RenewEvery and ExpireEvery are how often a running job's lease is
	// renewed and how often expired leases are looked for (default a third
	// and a half of Lease).
	RenewEvery, ExpireEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	if c.Reason == nil {
		c.Reason = func(_ error, msg string) string { return msg }
	}
	if c.Recover == nil {
		c.Recover = func(context.Context, *Job, string) {}
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxPerOwner <= 0 {
		c.MaxPerOwner = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = realTicker
	}
	if c.ClaimPoll <= 0 {
		c.ClaimPoll = time.Second
	}
	if c.FollowPoll <= 0 {
		c.FollowPoll = 500 * time.Millisecond
	}
	if c.RenewEvery <= 0 {
		c.RenewEvery = c.Lease / 3
	}
	if c.ExpireEvery <= 0 {
		c.ExpireEvery = c.Lease / 2
	}
}

// Observer hears what happens to jobs on this replica.
type Observer interface {
	// JobQueued: a job of kind was queued here.
	JobQueued(kind Kind)
	// JobStarted: a worker here claimed a job of kind, pickup after it
	// was queued.
	JobStarted(kind Kind, pickup time.Duration)
	// JobEvent: job, running here, told of its progress at at.
	JobEvent(job *Job, kind EventKind, msg string, at time.Time)
	// JobFinished: job, which ran here, ended with status after running
	// for d.
	JobFinished(job *Job, status Status, d time.Duration)
}

type noObserver struct{}

func (noObserver) JobQueued(Kind)                              {}
func (noObserver) JobStarted(Kind, time.Duration)              {}
func (noObserver) JobEvent(*Job, EventKind, string, time.Time) {}
func (noObserver) JobFinished(*Job, Status, time.Duration)     {}

// Engine queues, claims, runs and follows jobs. Start runs its workers;
// Close stops them.
type Engine struct {
	cfg    Config
	st     Store
	log    *slog.Logger
	wake   chan struct{} // a job was queued: a worker should claim
	events *hub          // job events appended: followers should read

	mu       sync.Mutex
	running  map[string]*Run // jobs running here, by id
	started  bool
	closing  bool
	cancel   context.CancelFunc
	loops    sync.WaitGroup // the work and expiry loops
	jobsDone sync.WaitGroup // running jobs
}

// New returns an engine on cfg; it runs nothing before Start.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Exec == nil {
		return nil, errors.New("new job engine: a store and an executor are required")
	}
	if cfg.WorkerID == "" {
		return nil, errors.New("new job engine: a worker id is required")
	}
	cfg.setDefaults()
	return &Engine{
		cfg:     cfg,
		st:      cfg.Store,
		log:     cfg.Log,
		wake:    make(chan struct{}, 1),
		events:  newHub(),
		running: make(map[string]*Run),
	}, nil
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// Start runs the workers and the expiry of dead workers' jobs until Close.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closing {
		return
	}
	e.started = true
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.loops.Add(2)
	go func() { defer e.loops.Done(); e.workLoop(ctx) }()
	go func() { defer e.loops.Done(); e.expiryLoop(ctx) }()
}

// Running reports whether the workers run: started and not closing.
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started && !e.closing
}

// Close stops claiming jobs, lets running jobs finish for grace, then
// interrupts those still running and waits for them to record their end.
func (e *Engine) Close(grace time.Duration) {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return
	}
	e.closing = true
	if e.cancel != nil {
		e.cancel()
	}
	e.mu.Unlock()
	e.loops.Wait()

	done := make(chan struct{})
	go func() { e.jobsDone.Wait(); close(done) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.mu.Lock()
		for id, r := range e.running {
			e.log.Warn("interrupting job at shutdown", slog.String("job", id))
			r.cancel(errShutdown)
		}
		e.mu.Unlock()
		<-done
	}
}

// Enqueue persists a job and wakes a worker. An active job on the same
// target is a errdefs.ErrConflict naming it.
func (e *Engine) Enqueue(ctx context.Context, j *Job) (*Job, error) {
	j.Status = StatusQueued
	j.CreatedAt = e.now()
	if err := e.st.CreateJob(ctx, j); err != nil {
		return nil, fmt.Errorf("queue %s job: %w", j.Kind, err)
	}
	e.Event(ctx, j.ID, EventPhase, 0, "queued "+string(j.Kind))
	e.cfg.Observer.JobQueued(j.Kind)
	e.wakeWorker()
	return j, nil
}

func (e *Engine) wakeWorker() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Event appends one event to a job and tells its followers; while the job
// runs here, its secrets are masked. Failing to record an event is logged,
// never fatal to the job.
func (e *Engine) Event(ctx context.Context, jobID string, kind EventKind, pct int, msg string) {
	e.mu.Lock()
	r := e.running[jobID]
	e.mu.Unlock()
	if r != nil {
		msg = r.Secrets.Mask(msg)
	}
	e.appendEvent(ctx, jobID, kind, pct, msg)
}

func (e *Engine) appendEvent(ctx context.Context, jobID string, kind EventKind, pct int, msg string) {
	ev := &Event{JobID: jobID, At: e.now(), Kind: kind, Message: msg, Percentage: pct}
	if err := e.st.AppendEvents(context.WithoutCancel(ctx), jobID, ev); err != nil {
		e.log.Error("append job event", slog.String("job", jobID), slog.String("error", err.Error()))
		return
	}
	e.events.notify(jobID)
}

// appendEvents appends a batch of a job's events in one write.
func (e *Engine) appendEvents(jobID string, evs []*Event) {
	if err := e.st.AppendEvents(context.Background(), jobID, evs...); err != nil {
		e.log.Error("append job events", slog.String("job", jobID), slog.Int("events", len(evs)), slog.String("error", err.Error()))
		return
	}
	e.events.notify(jobID)
}

// workLoop claims queued jobs while a worker slot is free. Pickup is driven
// by wake (a job queued here); the slow tick only finds jobs queued by other
// replicas.
func (e *Engine) workLoop(ctx context.Context) {
	slots := make(chan struct{}, e.cfg.Workers)
	tick, stop := e.cfg.NewTicker(e.cfg.ClaimPoll)
	defer stop()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		job, err := e.st.ClaimJob(ctx, e.cfg.WorkerID, e.now(), e.cfg.Lease, e.cfg.MaxPerOwner)
		if err != nil {
			<-slots
			if !errors.Is(err, errdefs.ErrNotFound) && ctx.Err() == nil {
				e.log.Error("claim job", slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
			case <-tick:
			}
			continue
		}
		e.jobsDone.Add(1)
		go func() {
			defer func() { <-slots }()
			defer e.jobsDone.Done()
			e.runJob(job)
			// A slot is free, and the owner may be below its cap again: a
			// job skipped for fair share can be claimed now.
			e.wakeWorker()
		}()
	}
}

// runJob runs one claimed job to its end under a renewed lease. The job's
// context ends, with a stopCause saying why, when its timeout passes, when
// it is cancelled (here, or on another replica through the store), when
// Close gives up waiting, or when the lease is lost. The job's secrets are
// forgotten when it ends.
func (e *Engine) runJob(job *Job) {
	base, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ctx := context.Context(base)
	if e.cfg.Timeout != nil {
		if timeout := e.cfg.Timeout(string(job.Kind)); timeout > 0 {
			var stopTimer context.CancelFunc
			ctx, stopTimer = context.WithTimeoutCause(base, timeout, TimedOut(timeout, string(job.Kind)))
			defer stopTimer()
		}
	}
	run := &Run{Job: job, Secrets: secretmask.New(), engine: e, cancel: cancel}
	e.mu.Lock()
	e.running[job.ID] = run
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, job.ID)
		e.mu.Unlock()
	}()

	leaseLost := make(chan struct{})
	renewDone := make(chan struct{})
	workDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick, stop := e.cfg.NewTicker(e.cfg.RenewEvery)
		defer stop()
		for {
			select {
			case <-workDone:
				return
			case <-tick:
				// Renewals go on while a cancelled or timed-out job stops:
				// the worker keeps the job until it has finished it.
				if err := e.st.RenewJobLease(context.WithoutCancel(ctx), job.ID, e.cfg.WorkerID, e.now(), e.cfg.Lease); err != nil {
					if errors.Is(err, errdefs.ErrJobCancelled) {
						e.cancelRunning(job.ID, e.cancelReason(job.ID))
						continue
					}
					e.log.Error("renew job lease", slog.String("job", job.ID), slog.String("error", err.Error()))
					if errors.Is(err, errdefs.ErrLeaseHeld) || errors.Is(err, errdefs.ErrNotFound) {
						close(leaseLost)
						cancel(errLeaseLost)
						return
					}
				}
			}
		}
	}()

	log := e.log.With(slog.String("job", job.ID), slog.String("kind", string(job.Kind)))
	log.Info("job started")
	began := time.Now()
	e.cfg.Observer.JobStarted(job.Kind, max(0, e.now().Sub(job.CreatedAt)))
	run.Event(ctx, EventPhase, 0, "running "+string(job.Kind)+" on "+e.cfg.WorkerID)
	err := e.cfg.Exec(ctx, run)
	run.FlushOutput()
	stopped, isStopped := StopReason(ctx)
	close(workDone)
	<-renewDone
	select {
	case <-leaseLost:
		log.Warn("job lease lost; another replica owns the job now")
		return
	default:
	}
	status, msg := StatusSucceeded, ""
	if err != nil {
		status, msg = StatusFailed, e.cfg.Reason(err, run.Mask(err.Error()))
		event := msg
		if isStopped {
			// The reason is the job's error; the event adds what the work
			// said on its way out.
			event, msg = stopped+" ("+msg+")", stopped
		}
		run.Event(context.Background(), EventError, job.Percentage, event)
		log.Warn("job failed", slog.String("error", msg))
	} else {
		log.Info("job succeeded")
	}
	run.Event(context.Background(), EventDone, 100, string(status))
	e.finishJob(log, job, status, msg)
	e.cfg.Observer.JobFinished(job, status, time.Since(began))
	// Followers waiting for the end hear of it now, not at their next poll.
	e.events.notify(job.ID)
}

// finishJob records a job's end. A write that fails (a full disk, a store
// that is briefly away) is retried with backoff for as long as the lease
// is ours, renewing it between tries, so the job's true end is what gets
// recorded, not "its worker stopped renewing its lease". It gives up when
// another replica or the expiry pass took the job.
func (e *Engine) finishJob(log *slog.Logger, job *Job, status Status, msg string) {
	ctx := context.Background()
	deadline := time.Now().Add(e.cfg.Lease)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := e.st.FinishJob(ctx, job.ID, e.cfg.WorkerID, status, msg, e.now())
		if err == nil {
			if attempt > 1 {
				log.Info("job end recorded after retries", slog.Int("attempts", attempt))
			}
			return
		}
		if errors.Is(err, errdefs.ErrLeaseHeld) || errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrInvalid) || time.Now().After(deadline) {
			log.Error("finish job", slog.String("error", err.Error()), slog.Int("attempts", attempt))
			return
		}
		log.Warn("finish job; retrying", slog.String("error", err.Error()), slog.Duration("backoff", backoff))
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		switch rerr := e.st.RenewJobLease(ctx, job.ID, e.cfg.WorkerID, e.now(), e.cfg.Lease); {
		case rerr == nil:
			deadline = time.Now().Add(e.cfg.Lease)
		case errors.Is(rerr, errdefs.ErrLeaseHeld) || errors.Is(rerr, errdefs.ErrNotFound):
			log.Error("finish job: the lease is lost", slog.String("error", err.Error()))
			return
		}
	}
}

// cancelRunning stops a job running on this replica with reason; false when
// it does not run here.
func (e *Engine) cancelRunning(jobID, reason string) bool {
	e.mu.Lock()
	r, ok := e.running[jobID]
	e.mu.Unlock()
	if ok {
		r.cancel(&stopCause{reason})
	}
	return ok
}

// Cancel cancels a job for who (a user's name): a queued job is failed at
// once; a running one is stopped here when it runs here, and through the
// store (its worker's next lease renewal) when it runs on another replica.
// It returns the job as it is now.
func (e *Engine) Cancel(ctx context.Context, jobID, who string) (*Job, error) {
	j, err := e.st.CancelJob(ctx, jobID, "cancelled by "+who, e.now())
	if err != nil {
		return nil, err // the store's error names the job and its status
	}
	switch j.Status {
	case StatusFailed:
		// It never ran: nothing to stop, its target was never touched.
		e.Event(ctx, j.ID, EventError, j.Percentage, j.Error)
		e.Event(ctx, j.ID, EventDone, 100, string(StatusFailed))
		e.events.notify(j.ID)
	case StatusRunning:
		e.cancelRunning(j.ID, j.CancelReason)
	}
	return j, nil
}

// cancelReason reads the reason a job was cancelled with in the store.
func (e *Engine) cancelReason(jobID string) string {
	j, err := e.st.GetJob(context.Background(), jobID)
	if err != nil || j.CancelReason == "" {
		return "cancelled"
	}
	return j.CancelReason
}

// expiryLoop fails jobs whose worker died (its lease expired), on this or
// any replica, about once per half lease.
func (e *Engine) expiryLoop(ctx context.Context) {
	tick, stop := e.cfg.NewTicker(e.cfg.ExpireEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := e.FailExpired(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("fail expired jobs", slog.String("error", err.Error()))
			}
		}
	}
}

// FailExpired fails the jobs whose lease ran out and has Recover put what
// they were working on back in a state that allows trying again.
func (e *Engine) FailExpired(ctx context.Context) error {
	jobs, err := e.st.FailExpiredJobs(ctx, e.now(), "the worker running this job stopped renewing its lease (crashed, killed, or unable to write to the store); the job was failed and can be run again")
	if err != nil {
		return fmt.Errorf("fail expired jobs: %w", err)
	}
	e.recoverDead(ctx, jobs)
	return nil
}

// FailDeadAtStart fails, when this server is the store's sole user, every
// job still running: its worker was this server's previous run. Other
// servers' jobs (replicas on one database) wait for their lease to expire.
func (e *Engine) FailDeadAtStart(ctx context.Context) error {
	if !e.cfg.SoleServer {
		return e.FailExpired(ctx)
	}
	jobs, err := e.st.FailRunningJobs(ctx, e.now(), "the server running this job stopped (crashed or killed) before it ended; the job was failed at the next start and can be run again")
	if err != nil {
		return fmt.Errorf("fail jobs of the previous run: %w", err)
	}
	e.recoverDead(ctx, jobs)
	return nil
}

// recoverDead records the end of jobs whose worker died and frees their
// targets.
func (e *Engine) recoverDead(ctx context.Context, jobs []*Job) {
	for _, j := range jobs {
		e.log.Warn("failed job of a dead worker", slog.String("job", j.ID), slog.String("worker", j.Worker))
		e.Event(ctx, j.ID, EventError, j.Percentage, "worker "+j.Worker+" died; job failed")
		e.Event(ctx, j.ID, EventDone, 100, string(StatusFailed))
		e.cfg.Recover(ctx, j, "job "+j.ID+" failed: its worker died")
	}
}
