package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
)

// ---- template versions, saved plans, drift, job timings ----------------------

// TemplateVersions stores the versions of templates.
type TemplateVersions interface {
	// CreateTemplateVersion stores version v.Version (>= 1) of an existing
	// template: ErrNotFound when the template is absent, ErrConflict when
	// that version exists.
	CreateTemplateVersion(ctx context.Context, v *stack.TemplateVersion) error
	GetTemplateVersion(ctx context.Context, templateID string, version int) (*stack.TemplateVersion, error)
	// ListTemplateVersions returns a template's versions, oldest first.
	ListTemplateVersions(ctx context.Context, templateID string) ([]*stack.TemplateVersion, error)
	// UpdateTemplate replaces a template's title, active version, format
	// and content; ErrNotFound when absent.
	UpdateTemplate(ctx context.Context, t *stack.Template) error
}

// StackUpdates changes and removes stacks.
type StackUpdates interface {
	// UpdateStack replaces a stack's title, template version, variables
	// and secret variables; ErrNotFound when absent.
	UpdateStack(ctx context.Context, r *StackRecord) error
	// DeleteStack removes a stack, its saved plans and its drift record;
	// its machines, their history and its state versions stay.
	// ErrNotFound when absent.
	DeleteStack(ctx context.Context, id string) error
}

// SavedPlan is a plan a stack's plan job made, kept so that an apply runs
// exactly it. File is Terraform's plan file (it holds every variable's
// value: sealed at rest); StateSerial and StateLineage name the state it
// was made on (serial -1 when there was none).
type SavedPlan struct {
	ID              string          `json:"id"`
	StackID         string          `json:"stack_id"`
	OwnerID         string          `json:"owner_id"`
	TemplateVersion int             `json:"template_version"`
	StateSerial     int64           `json:"state_serial"`
	StateLineage    string          `json:"state_lineage,omitempty"`
	File            []byte          `json:"-"`
	Result          json.RawMessage `json:"result,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
}

// Plans stores saved plans.
type Plans interface {
	// PutPlan stores a plan (ID set by the caller, the id of the job that
	// made it) or replaces the one of that ID.
	PutPlan(ctx context.Context, p *SavedPlan) error
	GetPlan(ctx context.Context, id string) (*SavedPlan, error)
}

// DriftedResource is one resource whose real object differs from the
// stack's state: Action is what a refresh found (update, delete).
type DriftedResource struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Action  string   `json:"action"`
	Changed []string `json:"changed,omitempty"`
}

// Drift is the last drift check of a stack.
type Drift struct {
	StackID   string            `json:"stack_id"`
	CheckedAt time.Time         `json:"checked_at"`
	Resources []DriftedResource `json:"resources"`
}

// Drifts stores each stack's last drift check.
type Drifts interface {
	// PutDrift replaces the stack's drift record.
	PutDrift(ctx context.Context, d *Drift) error
	// GetDrift returns the stack's drift record; ErrNotFound when it was
	// never checked.
	GetDrift(ctx context.Context, stackID string) (*Drift, error)
}

// JobTimings stores how long each phase of a job took, in milliseconds.
type JobTimings interface {
	// PutJobTimings replaces a job's timings.
	PutJobTimings(ctx context.Context, jobID string, ms map[string]int64) error
	// GetJobTimings returns a job's timings, empty when none were kept.
	GetJobTimings(ctx context.Context, jobID string) (map[string]int64, error)
	// ListStackJobs returns the jobs of a stack, newest first, at most
	// limit (every one when limit <= 0).
	ListStackJobs(ctx context.Context, stackID string, limit int) ([]*jobs.Job, error)
}

// CheckTemplateVersion is what every backend requires of a new version.
func CheckTemplateVersion(v *stack.TemplateVersion, now time.Time) (int64, error) {
	if v == nil {
		return 0, Invalidf("create template version: nil version")
	}
	if err := CheckKey("create template version", "template_id", v.TemplateID); err != nil {
		return 0, err
	}
	if v.Version < 1 {
		return 0, Invalidf("create template version: version %d is not >= 1", v.Version)
	}
	if v.Format != stack.FormatHCL && v.Format != stack.FormatJSON {
		return 0, Invalidf("create template version: format %q is not hcl or json", v.Format)
	}
	at := v.CreatedAt
	if at.IsZero() {
		at = now
	}
	n, err := UnixNanos("created_at", at)
	if err != nil {
		return 0, wrapf(err, "create template version")
	}
	v.CreatedAt = FromNanos(n)
	return n, nil
}

// CheckTemplateUpdate is what every backend requires of a template update.
func CheckTemplateUpdate(t *stack.Template) error {
	if t == nil {
		return Invalidf("update template: nil template")
	}
	if err := CheckKey("update template", "id", t.ID); err != nil {
		return err
	}
	if t.ActiveVersion < 1 {
		return Invalidf("update template %s: active version %d is not >= 1", t.ID, t.ActiveVersion)
	}
	if t.Format != stack.FormatHCL && t.Format != stack.FormatJSON {
		return Invalidf("update template %s: format %q is not hcl or json", t.ID, t.Format)
	}
	return nil
}

// CheckSavedPlan is what every backend requires of a saved plan.
func CheckSavedPlan(p *SavedPlan, now time.Time) (int64, error) {
	if p == nil {
		return 0, Invalidf("put plan: nil plan")
	}
	if err := CheckKey("put plan", "id", p.ID); err != nil {
		return 0, err
	}
	if err := CheckKey("put plan", "stack_id", p.StackID); err != nil {
		return 0, err
	}
	at := p.CreatedAt
	if at.IsZero() {
		at = now
	}
	n, err := UnixNanos("created_at", at)
	if err != nil {
		return 0, wrapf(err, "put plan %s", p.ID)
	}
	p.CreatedAt = FromNanos(n)
	return n, nil
}

// CheckDrift is what every backend requires of a drift record.
func CheckDrift(d *Drift) (int64, []byte, error) {
	if d == nil {
		return 0, nil, Invalidf("put drift: nil drift")
	}
	if err := CheckKey("put drift", "stack_id", d.StackID); err != nil {
		return 0, nil, err
	}
	n, err := UnixNanos("checked_at", d.CheckedAt)
	if err != nil {
		return 0, nil, wrapf(err, "put drift %s", d.StackID)
	}
	if d.Resources == nil {
		d.Resources = []DriftedResource{}
	}
	b, err := json.Marshal(d.Resources)
	if err != nil {
		return 0, nil, wrapf(err, "put drift %s", d.StackID)
	}
	d.CheckedAt = FromNanos(n)
	return n, b, nil
}

// SecretVariablesJSON encodes a stack's secret variables for sealing (nil
// for none).
func SecretVariablesJSON(m map[string]stack.Secret) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	plain := make(map[string]string, len(m))
	for k, v := range m {
		plain[k] = v.Reveal()
	}
	return json.Marshal(plain)
}

// SecretVariablesFrom decodes what SecretVariablesJSON encoded.
func SecretVariablesFrom(b []byte) (map[string]stack.Secret, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var plain map[string]string
	if err := json.Unmarshal(b, &plain); err != nil {
		return nil, err
	}
	out := make(map[string]stack.Secret, len(plain))
	for k, v := range plain {
		out[k] = stack.Secret(v)
	}
	return out, nil
}

// StackUpdate is a checked UpdateStack: the time in Unix nanoseconds, the
// variables' JSON and the secret variables' JSON to seal (nil for none).
type StackUpdate struct {
	Updated   int64
	Variables string
	Secret    []byte
}

// CheckStackUpdate is what every backend requires of a stack update; now
// is the store clock's time, used when r.UpdatedAt is zero.
func CheckStackUpdate(r *StackRecord, now time.Time) (StackUpdate, error) {
	if r == nil {
		return StackUpdate{}, Invalidf("update stack: nil stack")
	}
	at := r.UpdatedAt
	if at.IsZero() {
		at = now
	}
	if err := CheckKey("update stack", "id", r.ID); err != nil {
		return StackUpdate{}, err
	}
	if r.TemplateVersion < 1 {
		return StackUpdate{}, Invalidf("update stack %s: template version %d is not >= 1", r.ID, r.TemplateVersion)
	}
	un, err := UnixNanos("updated_at", at)
	if err != nil {
		return StackUpdate{}, wrapf(err, "update stack %s", r.ID)
	}
	vj, err := JSONObject(r.Variables)
	if err != nil {
		return StackUpdate{}, wrapf(err, "update stack %s: encode variables", r.ID)
	}
	secret, err := SecretVariablesJSON(r.SecretVariables)
	if err != nil {
		return StackUpdate{}, wrapf(err, "update stack %s: encode secret variables", r.ID)
	}
	return StackUpdate{Updated: un, Variables: vj, Secret: secret}, nil
}

// OpenSecretVariables sets r.SecretVariables from their sealed JSON, opened
// with the backend's open (nothing when sealed is empty).
func OpenSecretVariables(r *StackRecord, sealed []byte, open func(what string, sealed []byte) ([]byte, error)) error {
	if len(sealed) == 0 {
		return nil
	}
	plain, err := open("stack "+r.ID+" secret variables", sealed)
	if err != nil {
		return err
	}
	if r.SecretVariables, err = SecretVariablesFrom(plain); err != nil {
		return fmt.Errorf("decode stack %s secret variables: %w", r.ID, err)
	}
	return nil
}
