// Package store declares Kloud's persistence: one small interface per
// aggregate, speaking in domain types only (no SQL, no BSON), so any backend
// (the embedded SQLite in store/sqlite, MongoDB in store/mongo) can stand
// behind the service. Every backend runs the conformance suite in
// store/storetest.
package store

import (
	"context"
	"time"

	"github.com/kloud/kloud/user"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/errdefs"
	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/stack"
)

// Sentinel errors every backend returns, wrapped with context. They are
// errdefs' errors under the names store callers know.
var (
	ErrNotFound     = errdefs.ErrNotFound
	ErrConflict     = errdefs.ErrConflict
	ErrLeaseHeld    = errdefs.ErrLeaseHeld
	ErrStaleSerial  = errdefs.ErrStaleSerial
	ErrInvalid      = errdefs.ErrInvalid
	ErrJobCancelled = errdefs.ErrJobCancelled
)

// Store is every aggregate a backend provides.
type Store interface {
	Users
	Credentials
	Templates
	Stacks
	Machines
	Jobs
	Events
	Leases
	StateVersions
	RatingModules
	Hashmap
	Rated
	WriterStates
	Cost
	TemplateVersions
	StackUpdates
	Plans
	Drifts
	JobTimings
	Tunnels
	Shares
	Activity
	TerminalSessions
	Audit
	Close() error
}

// ---- users and tokens ------------------------------------------------------

// Users stores users. Names and token hashes are unique (ErrConflict).
type Users interface {
	CreateUser(ctx context.Context, u *user.User) error
	GetUser(ctx context.Context, id string) (*user.User, error)
	GetUserByTokenHash(ctx context.Context, hash string) (*user.User, error)
	ListUsers(ctx context.Context) ([]*user.User, error)
}

// ---- credentials, templates, stacks -----------------------------------------

// Credentials stores credentials; Data and Bootstrap are encrypted at rest.
// An empty ownerID in a list means every owner.
type Credentials interface {
	CreateCredential(ctx context.Context, c *stack.Credential) error
	GetCredential(ctx context.Context, id string) (*stack.Credential, error)
	ListCredentials(ctx context.Context, ownerID string) ([]*stack.Credential, error)
	// UpdateCredential replaces title, verified, verify message, bootstrap
	// and bootstrapped; ErrNotFound when absent.
	UpdateCredential(ctx context.Context, c *stack.Credential) error
	// DeleteCredential refuses with ErrConflict while a stack that is not
	// destroyed uses it.
	DeleteCredential(ctx context.Context, id string) error
}

// Templates stores user templates.
type Templates interface {
	CreateTemplate(ctx context.Context, t *stack.Template) error
	GetTemplate(ctx context.Context, id string) (*stack.Template, error)
	ListTemplates(ctx context.Context, ownerID string) ([]*stack.Template, error)
	// DeleteTemplate refuses with ErrConflict while a stack uses it.
	DeleteTemplate(ctx context.Context, id string) error
}

// StackRecord is a stack with the secret its machines' agent tokens derive
// from; the secret is encrypted at rest.
type StackRecord struct {
	stack.Stack
	AgentSecret stack.Secret `json:"-"`
	// SecretVariables are the values of the variables the template
	// declares sensitive; they are sealed at rest and reach Terraform
	// only as TF_VAR_ environment variables.
	SecretVariables map[string]stack.Secret `json:"-"`
}

// Stacks stores stacks.
type Stacks interface {
	CreateStack(ctx context.Context, s *StackRecord) error
	GetStack(ctx context.Context, id string) (*StackRecord, error)
	ListStacks(ctx context.Context, ownerID string) ([]*StackRecord, error)
	// SetStackStatus sets status and reason; ErrNotFound when absent.
	SetStackStatus(ctx context.Context, id string, status machinestate.StackState, reason string, at time.Time) error
}

// ---- machines and their state history ---------------------------------------

// MachineFilter selects machines; empty fields match everything. Page
// cuts the answer to one page of the id order.
type MachineFilter struct {
	OwnerID string
	StackID string
	Page
}

// HistoryQuery selects state records of the machines of one owner (all owners
// when OwnerID is empty) for the window [From, To).
type HistoryQuery struct {
	OwnerID  string
	From, To time.Time
}

// Machines stores machines and their append-only state history.
type Machines interface {
	// PutMachine creates the machine or replaces its stored fields (label,
	// metadata, always_on, agent token hash); it never changes State, which
	// only SetMachineState does. A new machine starts with the record's
	// State, appended to its history at CreatedAt.
	PutMachine(ctx context.Context, m *stack.Machine) error
	GetMachine(ctx context.Context, id string) (*stack.Machine, error)
	GetMachineByAgentTokenHash(ctx context.Context, hash string) (*stack.Machine, error)
	ListMachines(ctx context.Context, f MachineFilter) ([]*stack.Machine, error)
	// SetMachineState sets the machine's state and reason and appends the
	// change to its history, both or neither. Setting the state it already
	// has with the same reason appends nothing.
	SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error
	// TouchMachine records that the machine's agent, of version, was heard
	// from at at. LastSeen never moves back: an older touch changes
	// nothing. It writes only the machine's narrow last-seen record, never
	// the machine's own row or document.
	TouchMachine(ctx context.Context, id string, at time.Time, version string) error
	// MachineHistory returns one machine's records in time order.
	MachineHistory(ctx context.Context, id string) ([]stack.StateRecord, error)
	// StateHistory returns, ordered by machine id then time, for every
	// machine of the query's owner: its last record at or before From (the
	// state the window opens in) and every record inside (From, To).
	StateHistory(ctx context.Context, q HistoryQuery) ([]stack.StateRecord, error)
	// DeleteMachine removes a machine that was never built; its history
	// stays.
	DeleteMachine(ctx context.Context, id string) error
}

// ---- jobs, events, leases -----------------------------------------------------

// Jobs stores jobs and hands them to workers under a lease.
type Jobs interface {
	// CreateJob queues a job; an active job on the same Target makes it an
	// *ActiveJobError.
	CreateJob(ctx context.Context, j *jobs.Job) error
	GetJob(ctx context.Context, id string) (*jobs.Job, error)
	// ListJobs returns jobs of the given statuses (every status when none),
	// oldest first.
	ListJobs(ctx context.Context, statuses ...jobs.Status) ([]*jobs.Job, error)
	// ClaimJob moves the oldest queued job to running for worker, with a
	// lease until now+lease; ErrNotFound when none is queued. With
	// maxPerOwner > 0 it skips the queued jobs of owners that already have
	// maxPerOwner running jobs (ErrNotFound when only those are queued).
	ClaimJob(ctx context.Context, worker string, now time.Time, lease time.Duration, maxPerOwner int) (*jobs.Job, error)
	// RenewJobLease extends the lease of a running job worker holds;
	// ErrLeaseHeld when the job is not running under worker any more. When
	// CancelJob asked the job to stop, it still renews the lease (the worker
	// needs it to stop the job and finish it) and returns ErrJobCancelled.
	RenewJobLease(ctx context.Context, id, worker string, now time.Time, lease time.Duration) error
	// CancelJob cancels a job with reason: a queued job is failed at once
	// with reason as its error (no worker can claim it afterwards); a
	// running one gets CancelReason (the first reason stays), which its
	// worker's next RenewJobLease answers with ErrJobCancelled. It returns
	// the job as it is after the call. An ended job is ErrConflict naming
	// its status; a missing one ErrNotFound.
	CancelJob(ctx context.Context, id, reason string, at time.Time) (*jobs.Job, error)
	// SetJobProgress records the percentage of a running job worker holds.
	SetJobProgress(ctx context.Context, id, worker string, percentage int) error
	// FinishJob ends a running job worker holds as succeeded or failed.
	FinishJob(ctx context.Context, id, worker string, status jobs.Status, errMsg string, at time.Time) error
	// FailExpiredJobs fails every running job whose lease ended before now
	// with reason, and returns them.
	FailExpiredJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error)
	// FailRunningJobs fails every running job, whatever its lease, with
	// reason, and returns them. Only a server that is the store's sole user
	// calls it, at start, when every running job's worker is dead.
	FailRunningJobs(ctx context.Context, now time.Time, reason string) ([]*jobs.Job, error)
}

// Events stores job events.
type Events interface {
	// AppendEvents appends events to one job in order, assigning Seq.
	AppendEvents(ctx context.Context, jobID string, events ...*jobs.Event) error
	// ListEvents returns a job's events with Seq > afterSeq, in order, at
	// most limit (all when limit <= 0).
	ListEvents(ctx context.Context, jobID string, afterSeq int64, limit int) ([]*jobs.Event, error)
}

// Lease is a named lock with an expiry, for singletons such as the machine
// checker and the rating processor.
type Lease struct {
	Name    string
	Holder  string
	Expires time.Time
}

// Leases stores named leases.
type Leases interface {
	// AcquireLease takes or renews the lease for holder until now+ttl. It
	// fails with ErrLeaseHeld while another holder's lease has not expired;
	// an expired lease is taken over.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*Lease, error)
	// ReleaseLease gives up holder's lease; releasing one not held is a no-op.
	ReleaseLease(ctx context.Context, name, holder string) error
	GetLease(ctx context.Context, name string) (*Lease, error)
}

// ---- Terraform state versions -----------------------------------------------

// StateVersion is one saved Terraform state of a stack (or of a credential's
// bootstrap, keyed the same way). State is encrypted at rest.
type StateVersion struct {
	StackID   string    `json:"stack_id"`
	Serial    int64     `json:"serial"`
	Lineage   string    `json:"lineage"`
	JobID     string    `json:"job_id,omitempty"`
	State     []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// StateVersions stores Terraform states.
type StateVersions interface {
	// PutStateVersion refuses with ErrStaleSerial a serial not greater than
	// the latest one of the same stack.
	PutStateVersion(ctx context.Context, v *StateVersion) error
	LatestStateVersion(ctx context.Context, stackID string) (*StateVersion, error)
	// ListStateVersions returns versions oldest first, without State.
	ListStateVersions(ctx context.Context, stackID string) ([]*StateVersion, error)
}

// ---- rating rules -----------------------------------------------------------

// RatingModule is a rating module's persisted switch and order.
type RatingModule struct {
	Name     string `json:"module_id"`
	Enabled  bool   `json:"enabled"`
	Priority int    `json:"priority"`
}

// RatingModules stores module settings.
type RatingModules interface {
	ListRatingModules(ctx context.Context) ([]*RatingModule, error)
	GetRatingModule(ctx context.Context, name string) (*RatingModule, error)
	PutRatingModule(ctx context.Context, m *RatingModule) error
}

// Hashmap stores the hashmap module's rules. Names of services, of fields
// within a service and of groups are unique; a mapping's (field, value) or
// (service) within a group is unique, as is a threshold's level for a
// service or field within a group (ErrConflict). Deleting a service deletes
// its fields, mappings and thresholds; deleting a group ungroups its rules.
type Hashmap interface {
	CreateHashmapService(ctx context.Context, s *hashmap.Service) error
	GetHashmapService(ctx context.Context, id string) (*hashmap.Service, error)
	ListHashmapServices(ctx context.Context) ([]*hashmap.Service, error)
	DeleteHashmapService(ctx context.Context, id string) error

	CreateHashmapField(ctx context.Context, f *hashmap.Field) error
	GetHashmapField(ctx context.Context, id string) (*hashmap.Field, error)
	// ListHashmapFields lists a service's fields (all when serviceID is "").
	ListHashmapFields(ctx context.Context, serviceID string) ([]*hashmap.Field, error)
	DeleteHashmapField(ctx context.Context, id string) error

	CreateHashmapGroup(ctx context.Context, g *hashmap.Group) error
	GetHashmapGroup(ctx context.Context, id string) (*hashmap.Group, error)
	ListHashmapGroups(ctx context.Context) ([]*hashmap.Group, error)
	DeleteHashmapGroup(ctx context.Context, id string) error

	CreateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error
	GetHashmapMapping(ctx context.Context, id string) (*hashmap.Mapping, error)
	ListHashmapMappings(ctx context.Context) ([]*hashmap.Mapping, error)
	UpdateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error
	DeleteHashmapMapping(ctx context.Context, id string) error

	CreateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error
	GetHashmapThreshold(ctx context.Context, id string) (*hashmap.Threshold, error)
	ListHashmapThresholds(ctx context.Context) ([]*hashmap.Threshold, error)
	UpdateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error
	DeleteHashmapThreshold(ctx context.Context, id string) error

	// HashmapRules reads the whole configuration consistently.
	HashmapRules(ctx context.Context) (*hashmap.RuleSet, error)
}

// ---- rated frames, summaries, processing and writer state --------------------

// RatedPoint is one rated data point of one period and scope.
type RatedPoint struct {
	Scope    string            `json:"scope"`
	Begin    time.Time         `json:"begin"`
	End      time.Time         `json:"end"`
	Service  string            `json:"service"`
	Unit     string            `json:"unit"`
	Qty      decimal.Decimal   `json:"qty"`
	Price    decimal.Decimal   `json:"price"`
	Groupby  map[string]string `json:"groupby"`
	Metadata map[string]string `json:"metadata"`
	// DescID, when not 0, names the point's groupby and metadata (its
	// desc) among the points a store streams (store/sqlite's
	// EachRatedPoint): points with the same DescID have equal groupby and
	// metadata and share the maps, which are read-only. A reader works
	// out once what depends only on the desc. 0 says nothing.
	DescID uint64 `json:"-"`
}

// RatedPeriod is every rated point of one scope and period.
type RatedPeriod struct {
	Scope      string
	Begin, End time.Time
	Points     []RatedPoint
}

// ScopeState is how far rating has come for one scope.
type ScopeState struct {
	Scope         string    `json:"scope"`
	LastProcessed time.Time `json:"last_processed"` // end of the last rated period
}

// SummaryQuery asks for rated totals in CloudKitty's table format.
//
// Group and filter keys: "type" is the service; "time" the period (a row's
// value is the period's begin); "time-d", "time-w", "time-m", "time-y" the
// UTC day, ISO week (from Monday), month or year Begin falls in (a row's
// value is its start); any other key the point's groupby value, else its
// metadata value (null when it has neither). Time values are RFC 3339
// strings; a time filter takes an RFC 3339 time or a date and matches the
// bucket it falls in. Rows are ordered by begin, then the key values.
type SummaryQuery struct {
	Scope   string            // "" for every scope
	Begin   time.Time         // points with Begin >= Begin
	End     time.Time         // and End <= End; zero means unbounded
	GroupBy []string          // "type", "time", "time-d|w|m|y", or a groupby/metadata key
	Filters map[string]string // key (groupby/metadata key, or "type") → value
	Offset  int
	Limit   int // <= 0: every row
}

// Summary is CloudKitty's v2 summary table: Total counts the rows before
// pagination; Columns are begin, end, qty, rate, then the groupby keys;
// each row of Results holds values in that order (times RFC 3339 strings,
// qty and rate decimal strings).
type Summary struct {
	Total   int      `json:"total"`
	Columns []string `json:"columns"`
	Results [][]any  `json:"results"`
}

// Rated stores rated periods and the per-scope processing state.
type Rated interface {
	// CommitRatedPeriod stores a period's points and advances the scope's
	// state to p.End, both or neither. It refuses with ErrConflict a period
	// whose Begin is not the scope's LastProcessed (when the scope has a
	// state), so no period is rated twice or skipped.
	CommitRatedPeriod(ctx context.Context, p *RatedPeriod) error
	GetScopeState(ctx context.Context, scope string) (*ScopeState, error)
	ListScopeStates(ctx context.Context) ([]*ScopeState, error)
	// RatedPoints returns points of the query's scope and window matching
	// its filters, ordered by begin, then service, in pages.
	RatedPoints(ctx context.Context, q SummaryQuery) ([]RatedPoint, error)
	// Summarize groups and paginates inside the backend.
	Summarize(ctx context.Context, q SummaryQuery) (*Summary, error)
}

// WriterState is a write orchestrator's progress for one scope and writer.
type WriterState struct {
	Scope       string          `json:"scope"`
	Writer      string          `json:"writer"`
	LastWritten time.Time       `json:"last_written"`
	Total       decimal.Decimal `json:"total"`
}

// WriterStates stores writer progress.
type WriterStates interface {
	GetWriterState(ctx context.Context, scope, writer string) (*WriterState, error)
	PutWriterState(ctx context.Context, s *WriterState) error
}

// ---- audit ----------------------------------------------------------------------

// Audit stores the audit log.
type Audit interface {
	// AppendAudit records e; an empty ID or zero At is filled in.
	AppendAudit(ctx context.Context, e *audit.Entry) error
	// ListAudit returns the entries q selects, newest first, at most
	// q.Limit (audit.DefaultLimit when 0, never more than audit.MaxLimit).
	ListAudit(ctx context.Context, q audit.Query) ([]*audit.Entry, error)
	// PruneAudit deletes the entries older than before and says how many.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}
