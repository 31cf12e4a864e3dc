// Package client is Kloud's typed Go SDK: the request and response types of
// the HTTP API and a Client that calls it. The CLI and the tests use it, so
// the contract is written down once.
package client

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kloud/kloud/klient/agentapi"
	"github.com/kloud/kloud/machinestate"
)

// Error is the JSON body of every failed request.
type Error struct {
	Status      int          `json:"-"`
	Message     string       `json:"error"`
	Field       string       `json:"field,omitempty"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
	State       string       `json:"state,omitempty"`
	Allowed     []string     `json:"allowed,omitempty"`
	JobID       string       `json:"job_id,omitempty"`
	// Budget is the exhausted budget that refused a start or apply.
	Budget *Budget `json:"budget,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return http.StatusText(e.Status)
	}
	return e.Message
}

// Diagnostic is one template problem with its place.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Health is GET /healthz.
type Health struct {
	Status     string          `json:"status"`
	Store      string          `json:"store"`
	Version    string          `json:"version"`
	Singletons map[string]bool `json:"singletons"`
	// Confinement says how members' Terraform runs and machines are
	// confined; "UNCONFINED: ..." when they are not.
	Confinement string `json:"confinement"`
	// Confined is false when members can run code as Kloud's own user.
	Confined bool `json:"confined"`
}

// Provider is one provider as GET /api/v1/providers describes it.
type Provider struct {
	Name         string          `json:"name"`
	ResourceType string          `json:"resource_type"`
	Credential   []ProviderField `json:"credential"`
	Bootstrap    []ProviderField `json:"bootstrap,omitempty"`
}

// ProviderField describes one field of a provider's credential or
// bootstrap data.
type ProviderField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Type     string   `json:"type"` // string, integer, number, boolean, enum, list, object
	Secret   bool     `json:"secret"`
	Required bool     `json:"required"`
	Enum     []string `json:"enum,omitempty"`
}

// CreateUserRequest is POST /api/v1/users.
type CreateUserRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// User is a user; Token is set only in the answer to its creation.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateCredentialRequest is POST /api/v1/credentials.
type CreateCredentialRequest struct {
	Provider string          `json:"provider"`
	Title    string          `json:"title"`
	Data     json.RawMessage `json:"data"`
}

// Credential is a credential as the API shows it: never its secrets.
type Credential struct {
	ID            string    `json:"id"`
	OwnerID       string    `json:"owner_id"`
	Provider      string    `json:"provider"`
	Title         string    `json:"title"`
	Verified      bool      `json:"verified"`
	VerifyMessage string    `json:"verify_message,omitempty"`
	Bootstrapped  bool      `json:"bootstrapped"`
	CreatedAt     time.Time `json:"created_at"`
}

// VerifyResult is POST /api/v1/credentials/{id}/verify.
type VerifyResult struct {
	Verified bool   `json:"verified"`
	Message  string `json:"message"`
}

// JobRef answers every request that started a job.
type JobRef struct {
	JobID string `json:"job_id"`
}

// CreateTemplateRequest is POST /api/v1/templates.
type CreateTemplateRequest struct {
	Title    string `json:"title"`
	Provider string `json:"provider"`
	Content  string `json:"content"`
	Format   string `json:"format"`
}

// Template is a stored template.
type Template struct {
	ID        string    `json:"id"`
	OwnerID   string    `json:"owner_id"`
	Title     string    `json:"title"`
	Provider  string    `json:"provider"`
	Format    string    `json:"format"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"created_at"`
	// ActiveVersion is the version new stacks use.
	ActiveVersion int `json:"active_version"`
}

// PlanRequest is POST /api/v1/templates/{id}/plan.
type PlanRequest struct {
	CredentialID string            `json:"credential_id"`
	Variables    map[string]string `json:"variables,omitempty"`
}

// PlannedMachine is one machine a plan would build.
type PlannedMachine struct {
	Label    string `json:"label"`
	Type     string `json:"type"`
	Action   string `json:"action"`
	Size     string `json:"size,omitempty"`
	Region   string `json:"region,omitempty"`
	Image    string `json:"image,omitempty"`
	AlwaysOn bool   `json:"always_on"`
}

// CostEstimate prices a plan's machines.
type CostEstimate struct {
	Hourly   string `json:"hourly"`
	Monthly  string `json:"monthly"`
	Currency string `json:"currency"`
}

// PlanResult answers a plan.
type PlanResult struct {
	Machines     []PlannedMachine `json:"machines"`
	CostEstimate CostEstimate     `json:"cost_estimate"`
	// Budget says whether the estimate fits what is left of the owner's
	// budget (none when the owner has no budget).
	Budget *PlanBudget `json:"budget,omitempty"`
}

// CreateStackRequest is POST /api/v1/stacks.
type CreateStackRequest struct {
	Title        string            `json:"title"`
	TemplateID   string            `json:"template_id"`
	CredentialID string            `json:"credential_id"`
	Variables    map[string]string `json:"variables,omitempty"`
}

// Stack is a stack with its machines.
type Stack struct {
	ID           string                  `json:"id"`
	OwnerID      string                  `json:"owner_id"`
	Title        string                  `json:"title"`
	TemplateID   string                  `json:"template_id"`
	CredentialID string                  `json:"credential_id"`
	Provider     string                  `json:"provider"`
	Variables    map[string]string       `json:"variables"`
	Status       machinestate.StackState `json:"status"`
	Reason       string                  `json:"reason,omitempty"`
	Machines     []Machine               `json:"machines"`
	CreatedAt    time.Time               `json:"created_at"`
	UpdatedAt    time.Time               `json:"updated_at"`

	// TemplateVersion is the template version the next plan or apply
	// uses; sensitive Variables read as a mask.
	TemplateVersion int `json:"template_version"`
	// Drifted is true when the last drift check found resources changed
	// outside Kloud; Drift is that check (absent when never checked).
	Drifted bool        `json:"drifted"`
	Drift   *StackDrift `json:"drift,omitempty"`
}

// Machine is a machine as the API shows it.
type Machine struct {
	ID            string             `json:"id"`
	StackID       string             `json:"stack_id"`
	OwnerID       string             `json:"owner_id"`
	Label         string             `json:"label"`
	Provider      string             `json:"provider"`
	State         machinestate.State `json:"state"`
	Reason        string             `json:"reason"`
	AlwaysOn      bool               `json:"always_on"`
	Metadata      json.RawMessage    `json:"metadata"`
	UptimeSeconds int64              `json:"uptime_seconds"`
	LastSeen      *time.Time         `json:"last_seen,omitempty"`
	Agent         AgentStatus        `json:"agent"`
	// NextAutostart and NextAutostop are the machine's next scheduled
	// start and stop (its own schedule, else its stack's).
	NextAutostart *time.Time `json:"next_autostart,omitempty"`
	NextAutostop  *time.Time `json:"next_autostop,omitempty"`
	// LastActivityAt is when the machine was last in use (terminal input,
	// an attached terminal, the agent's sign of work).
	LastActivityAt *time.Time `json:"last_activity_at,omitempty"`
	// Shared is true in the list of a user the machine is shared with;
	// Permission is then what the share grants (use or control).
	Shared     bool   `json:"shared,omitempty"`
	Permission string `json:"permission,omitempty"`
}

// TerminalSession is a terminal session opened on a machine.
type TerminalSession struct {
	ID        string     `json:"id"`
	MachineID string     `json:"machine_id"`
	UserID    string     `json:"user_id"`
	OwnerID   string     `json:"owner_id"`
	Name      string     `json:"name,omitempty"`
	Replica   string     `json:"replica,omitempty"`
	OpenedAt  time.Time  `json:"opened_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	ExitCode  *int       `json:"exit_code,omitempty"`
}

// ShareRequest shares a machine: POST /api/v1/machines/{id}/shares.
type ShareRequest struct {
	UserID     string `json:"user_id"`
	Permission string `json:"permission"` // use or control
}

// Share is a machine shared with a user.
type Share struct {
	MachineID  string    `json:"machine_id"`
	UserID     string    `json:"user_id"`
	OwnerID    string    `json:"owner_id"`
	Permission string    `json:"permission"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
}

// The agent statuses of a machine.
const (
	AgentConnected = "connected" // heard from within the agent timeout
	AgentSilent    = "silent"    // heard from before, but not since
	AgentNever     = "never"     // never heard from
)

// AgentStatus is what Kloud knows of a machine's agent.
type AgentStatus struct {
	Status     string     `json:"status"`
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`
	Version    string     `json:"version,omitempty"`
}

// Job is a long operation.
type Job struct {
	ID           string     `json:"id"`
	Kind         string     `json:"kind"`
	Status       string     `json:"status"`
	Percentage   int        `json:"percentage"`
	Error        string     `json:"error"`
	StackID      string     `json:"stack_id,omitempty"`
	MachineID    string     `json:"machine_id,omitempty"`
	CredentialID string     `json:"credential_id,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	// CancelReason is set while a cancelled job that was running stops; it
	// becomes the job's error when it has.
	CancelReason string `json:"cancel_reason,omitempty"`
	// Timings are the milliseconds each phase of a stack job took
	// (compose, init, plan, apply, record).
	Timings map[string]int64 `json:"timings,omitempty"`
	// Plan is the result of a plan job once it succeeded.
	Plan *StackPlan `json:"plan,omitempty"`
}

// Done reports whether the job has ended.
func (j *Job) Done() bool { return j.Status == "succeeded" || j.Status == "failed" }

// Event is one line of a job's story.
type Event struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	Message    string    `json:"message"`
	Percentage int       `json:"percentage"`
}

// AgentReport is what a machine's agent sends on register and heartbeat:
// the agent's own type (one contract, package agentapi).
type AgentReport = agentapi.Report

// AgentAck answers an agent.
type AgentAck = agentapi.Ack
