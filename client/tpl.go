package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TemplateVariable is a variable a template version declares.
type TemplateVariable struct {
	Name        string               `json:"name"`
	Type        string               `json:"type,omitempty"`
	Default     string               `json:"default,omitempty"`
	Required    bool                 `json:"required"`
	Description string               `json:"description,omitempty"`
	Sensitive   bool                 `json:"sensitive"`
	Validations []VariableValidation `json:"validations,omitempty"`
}

// VariableValidation is one validation rule of a variable, evaluated by
// Terraform at plan.
type VariableValidation struct {
	Condition    string `json:"condition"`
	ErrorMessage string `json:"error_message"`
}

// CreateTemplateVersionRequest is POST /api/v1/templates/{id}/versions.
type CreateTemplateVersionRequest struct {
	Content string `json:"content"`
	Format  string `json:"format,omitempty"`
	Message string `json:"message,omitempty"`
}

// TemplateVersion is one version of a template with the variables it
// declares.
type TemplateVersion struct {
	TemplateID string             `json:"template_id"`
	Version    int                `json:"version"`
	Format     string             `json:"format"`
	Content    string             `json:"content"`
	Message    string             `json:"message,omitempty"`
	CreatedBy  string             `json:"created_by,omitempty"`
	CreatedAt  time.Time          `json:"created_at"`
	Active     bool               `json:"active"`
	Variables  []TemplateVariable `json:"variables"`
}

// UpdateTemplateRequest is PATCH /api/v1/templates/{id}; absent fields
// stay as they are.
type UpdateTemplateRequest struct {
	Title         *string `json:"title,omitempty"`
	ActiveVersion *int    `json:"active_version,omitempty"`
}

// UpdateStackRequest is PATCH /api/v1/stacks/{id}; absent fields stay as
// they are. Variables are merged into the stack's: a null value removes
// the variable.
type UpdateStackRequest struct {
	Title           *string            `json:"title,omitempty"`
	TemplateVersion *int               `json:"template_version,omitempty"`
	Variables       map[string]*string `json:"variables,omitempty"`
}

// ApplyStackRequest is the optional body of POST /api/v1/stacks/{id}/apply:
// with PlanID the apply runs exactly that saved plan.
type ApplyStackRequest struct {
	PlanID string `json:"plan_id,omitempty"`
}

// StackDrift is a stack's last drift check: the resources whose real
// objects differ from its state.
type StackDrift struct {
	CheckedAt time.Time         `json:"checked_at"`
	Resources []DriftedResource `json:"resources"`
}

// DriftedResource is one resource a drift check found changed outside
// Kloud: Action is update (attributes changed) or delete (it is gone).
type DriftedResource struct {
	Address string   `json:"address"`
	Type    string   `json:"type"`
	Action  string   `json:"action"`
	Changed []string `json:"changed,omitempty"`
}

// StackPlan is the result of a stack's plan job: what applying it changes.
// ID is the plan's id (its job's id) for POST …/apply {"plan_id"}.
type StackPlan struct {
	ID              string            `json:"id"`
	StackID         string            `json:"stack_id"`
	TemplateVersion int               `json:"template_version"`
	StateSerial     int64             `json:"state_serial"`
	Changes         bool              `json:"changes"`
	Resources       []ResourceChange  `json:"resources"`
	Summary         PlanSummary       `json:"summary"`
	Machines        []AffectedMachine `json:"machines"`
	CostBefore      CostEstimate      `json:"cost_before"`
	CostAfter       CostEstimate      `json:"cost_after"`
	CreatedAt       time.Time         `json:"created_at"`
}

// PlanSummary counts a plan's resource changes by action.
type PlanSummary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Destroy int `json:"destroy"`
}

// ResourceChange is one resource a plan changes. Action is create,
// update, replace or destroy; Changes lists the attributes that change
// (sensitive values read "(sensitive value)", values known only after
// apply "(known after apply)").
type ResourceChange struct {
	Address string            `json:"address"`
	Type    string            `json:"type"`
	Action  string            `json:"action"`
	Changes []AttributeChange `json:"changes,omitempty"`
}

// AttributeChange is one attribute's value before and after.
type AttributeChange struct {
	Name   string `json:"name"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// AffectedMachine is a machine a plan creates, updates, replaces or
// destroys; MachineID names the Kloud machine it is now (empty for a new
// one).
type AffectedMachine struct {
	MachineID string `json:"machine_id,omitempty"`
	Label     string `json:"label"`
	Action    string `json:"action"`
	SizeFrom  string `json:"size_from,omitempty"`
	Size      string `json:"size,omitempty"`
}

// CreateTemplateVersion pushes a new version of a template.
func (c *Client) CreateTemplateVersion(ctx context.Context, templateID string, r CreateTemplateVersionRequest) (*TemplateVersion, error) {
	return call[TemplateVersion](ctx, c, http.MethodPost, "/api/v1/templates/"+url.PathEscape(templateID)+"/versions", r)
}

// TemplateVersions lists a template's versions, oldest first.
func (c *Client) TemplateVersions(ctx context.Context, templateID string) ([]TemplateVersion, error) {
	return list[TemplateVersion](ctx, c, "/api/v1/templates/"+url.PathEscape(templateID)+"/versions")
}

// TemplateVersion shows one version of a template.
func (c *Client) TemplateVersion(ctx context.Context, templateID string, version int) (*TemplateVersion, error) {
	return call[TemplateVersion](ctx, c, http.MethodGet, "/api/v1/templates/"+url.PathEscape(templateID)+"/versions/"+strconv.Itoa(version), nil)
}

// UpdateTemplate changes a template's title or active version.
func (c *Client) UpdateTemplate(ctx context.Context, id string, r UpdateTemplateRequest) (*Template, error) {
	return call[Template](ctx, c, http.MethodPatch, "/api/v1/templates/"+url.PathEscape(id), r)
}

// DeleteTemplate deletes a template no stack uses (409 otherwise).
func (c *Client) DeleteTemplate(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/templates/"+url.PathEscape(id), nil, nil)
}

// UpdateStack changes a stack's title, template version or variables:
// what its next plan or apply uses.
func (c *Client) UpdateStack(ctx context.Context, id string, r UpdateStackRequest) (*Stack, error) {
	return call[Stack](ctx, c, http.MethodPatch, "/api/v1/stacks/"+url.PathEscape(id), r)
}

// DeleteStack deletes a stack that was destroyed or never applied.
func (c *Client) DeleteStack(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/stacks/"+url.PathEscape(id), nil, nil)
}

// PlanStack starts a plan job; its result is the job's Plan.
func (c *Client) PlanStack(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/plan", nil)
}

// ApplyPlan starts an apply job that applies exactly the saved plan planID;
// 409 when the stack's state changed since the plan was made.
func (c *Client) ApplyPlan(ctx context.Context, id, planID string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/apply", ApplyStackRequest{PlanID: planID})
}

// CheckDrift starts a drift check job of a stack.
func (c *Client) CheckDrift(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/drift", nil)
}

// StackJobs lists a stack's jobs, newest first, with their timings.
func (c *Client) StackJobs(ctx context.Context, id string) ([]Job, error) {
	return list[Job](ctx, c, "/api/v1/stacks/"+url.PathEscape(id)+"/jobs")
}
