package jobs

import (
	"time"

	"github.com/kloud/kloud/errdefs"
)

// ActiveJobError is the ErrConflict a CreateJob returns when the target
// already has a queued or running job; JobID names it.
type ActiveJobError struct {
	JobID  string
	Target string
}

func (e *ActiveJobError) Error() string {
	return "job " + e.JobID + " is already active on " + e.Target
}

// Unwrap lets errors.Is match ErrConflict.
func (e *ActiveJobError) Unwrap() error { return errdefs.ErrConflict }

// Kind names what a job does.
type Kind string

// The job kinds.
const (
	KindApply       Kind = "apply"
	KindDestroy     Kind = "destroy"
	KindBootstrap   Kind = "bootstrap"
	KindUnbootstrap Kind = "unbootstrap"
	KindStart       Kind = "start"
	KindStop        Kind = "stop"
	// KindPlan plans a stack and saves the plan; KindDrift checks a stack
	// for drift with a refresh-only plan.
	KindPlan  Kind = "plan"
	KindDrift Kind = "drift"
)

// Status is where a job is in its life.
type Status string

// The job statuses.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

// Active reports whether the job still holds its target.
func (s Status) Active() bool { return s == StatusQueued || s == StatusRunning }

// Job is a long operation on a stack, a machine or a credential. Target is
// the key that admits one active job at a time ("stack/<id>",
// "machine/<id>", "credential/<id>").
type Job struct {
	ID           string    `json:"id"`
	Kind         Kind      `json:"kind"`
	OwnerID      string    `json:"owner_id"`
	Target       string    `json:"target"`
	StackID      string    `json:"stack_id,omitempty"`
	MachineID    string    `json:"machine_id,omitempty"`
	CredentialID string    `json:"credential_id,omitempty"`
	Status       Status    `json:"status"`
	Percentage   int       `json:"percentage"`
	Error        string    `json:"error,omitempty"`
	Worker       string    `json:"worker,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	// CancelReason is set on a running job by CancelJob: its worker stops
	// it and fails it with this reason.
	CancelReason string `json:"cancel_reason,omitempty"`
}

// EventKind says what an event reports.
type EventKind string

// The event kinds.
const (
	EventPhase    EventKind = "phase"
	EventOutput   EventKind = "output"
	EventProgress EventKind = "progress"
	EventError    EventKind = "error"
	EventDone     EventKind = "done"
)

// Event is one line of a job's story. Seq is assigned by the store: 1, 2, …
// per job, without gaps.
type Event struct {
	JobID      string    `json:"job_id"`
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Kind       EventKind `json:"kind"`
	Message    string    `json:"message"`
	Percentage int       `json:"percentage"`
}
