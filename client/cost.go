package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/shopspring/decimal"
)

// Cost control: budgets on metered cost, machine and stack schedules,
// webhooks and their deliveries, and re-rating.

// Budget is a scope's budget as it stands: Spent is Rated (the rating
// summary's total of the period's rated part, through RatedThrough) plus
// Live (the running time not rated yet, priced now); Forecast extends the
// machines running now (Hourly) to the period's end.
type Budget struct {
	Scope        string            `json:"scope"`
	OwnerID      string            `json:"owner_id"`
	Amount       decimal.Decimal   `json:"amount"`
	Period       string            `json:"period"`
	WarnAt       []decimal.Decimal `json:"warn_at"`
	Action       string            `json:"action"`
	Spent        decimal.Decimal   `json:"spent"`
	Forecast     decimal.Decimal   `json:"forecast"`
	State        string            `json:"state"`
	Remaining    decimal.Decimal   `json:"remaining"`
	Rated        decimal.Decimal   `json:"rated"`
	Live         decimal.Decimal   `json:"live"`
	Hourly       decimal.Decimal   `json:"hourly"`
	RatedThrough time.Time         `json:"rated_through"`
	PeriodStart  time.Time         `json:"period_start"`
	PeriodEnd    time.Time         `json:"period_end"`
	Currency     string            `json:"currency"`
}

// The budget states.
const (
	BudgetOK        = "ok"
	BudgetWarned    = "warned"
	BudgetExhausted = "exhausted"
)

// BudgetRequest is PUT /api/v1/budgets/{scope}: Period "" is month,
// Action "" is notify.
type BudgetRequest struct {
	Amount decimal.Decimal   `json:"amount"`
	Period string            `json:"period,omitempty"`
	WarnAt []decimal.Decimal `json:"warn_at,omitempty"`
	Action string            `json:"action,omitempty"`
}

// PlanBudget says whether a plan's estimate fits the owner's budget: the
// estimate from now to the end of the budget's period against what is
// left.
type PlanBudget struct {
	Scope     string          `json:"scope"`
	Remaining decimal.Decimal `json:"remaining"`
	Estimate  decimal.Decimal `json:"estimate"`
	Fits      bool            `json:"fits"`
}

// PutBudget sets the budget of scope ("user:<id>" or "stack:<id>").
func (c *Client) PutBudget(ctx context.Context, scope string, r BudgetRequest) (*Budget, error) {
	return call[Budget](ctx, c, http.MethodPut, "/api/v1/budgets/"+url.PathEscape(scope), r)
}

// Budget returns the budget of scope with what it has spent.
func (c *Client) Budget(ctx context.Context, scope string) (*Budget, error) {
	return call[Budget](ctx, c, http.MethodGet, "/api/v1/budgets/"+url.PathEscape(scope), nil)
}

// Budgets lists the budgets the caller may see.
func (c *Client) Budgets(ctx context.Context) ([]Budget, error) {
	out, err := call[[]Budget](ctx, c, http.MethodGet, "/api/v1/budgets", nil)
	if err != nil {
		return nil, err
	}
	return *out, nil
}

// DeleteBudget removes the budget of scope.
func (c *Client) DeleteBudget(ctx context.Context, scope string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/budgets/"+url.PathEscape(scope), nil, nil)
}

// Schedule starts and stops a machine, or every machine of a stack, by
// cron expressions (minute hour day month weekday) in a time zone.
type Schedule struct {
	Target        string     `json:"target"`
	Autostart     string     `json:"autostart,omitempty"`
	Autostop      string     `json:"autostop,omitempty"`
	Timezone      string     `json:"timezone"`
	NextAutostart *time.Time `json:"next_autostart,omitempty"`
	NextAutostop  *time.Time `json:"next_autostop,omitempty"`
}

// ScheduleRequest is PUT /api/v1/machines/{id}/schedule (or a stack's):
// Timezone "" is UTC.
type ScheduleRequest struct {
	Autostart string `json:"autostart,omitempty"`
	Autostop  string `json:"autostop,omitempty"`
	Timezone  string `json:"timezone,omitempty"`
}

// PutMachineSchedule sets a machine's schedule.
func (c *Client) PutMachineSchedule(ctx context.Context, id string, r ScheduleRequest) (*Schedule, error) {
	return call[Schedule](ctx, c, http.MethodPut, "/api/v1/machines/"+url.PathEscape(id)+"/schedule", r)
}

// MachineSchedule returns a machine's own schedule.
func (c *Client) MachineSchedule(ctx context.Context, id string) (*Schedule, error) {
	return call[Schedule](ctx, c, http.MethodGet, "/api/v1/machines/"+url.PathEscape(id)+"/schedule", nil)
}

// DeleteMachineSchedule removes a machine's schedule.
func (c *Client) DeleteMachineSchedule(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/machines/"+url.PathEscape(id)+"/schedule", nil, nil)
}

// PutStackSchedule sets the schedule of every machine of a stack.
func (c *Client) PutStackSchedule(ctx context.Context, id string, r ScheduleRequest) (*Schedule, error) {
	return call[Schedule](ctx, c, http.MethodPut, "/api/v1/stacks/"+url.PathEscape(id)+"/schedule", r)
}

// StackSchedule returns a stack's schedule.
func (c *Client) StackSchedule(ctx context.Context, id string) (*Schedule, error) {
	return call[Schedule](ctx, c, http.MethodGet, "/api/v1/stacks/"+url.PathEscape(id)+"/schedule", nil)
}

// DeleteStackSchedule removes a stack's schedule.
func (c *Client) DeleteStackSchedule(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/stacks/"+url.PathEscape(id)+"/schedule", nil, nil)
}

// The webhook events.
const (
	EventJobSucceeded    = "job.succeeded"
	EventJobFailed       = "job.failed"
	EventBudgetWarned    = "budget.warned"
	EventBudgetExhausted = "budget.exhausted"
	EventMachineStopped  = "machine.stopped"
	EventStackDrifted    = "stack.drifted"
)

// Webhook sends events to a URL; its secret is never returned.
type Webhook struct {
	ID        string    `json:"id"`
	OwnerID   string    `json:"owner_id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookRequest is POST /api/v1/webhooks. Each delivery's body is signed:
// X-Kloud-Signature: sha256=<hex HMAC-SHA256 of the body with Secret>.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

// WebhookEvent is the JSON body a webhook receives.
type WebhookEvent struct {
	ID      string         `json:"id"`
	Event   string         `json:"event"`
	At      time.Time      `json:"at"`
	OwnerID string         `json:"owner_id"`
	Data    map[string]any `json:"data"`
}

// DeliveryAttempt is one try of a delivery.
type DeliveryAttempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Delivery is one event sent to a webhook, with every attempt.
type Delivery struct {
	ID            string            `json:"id"`
	WebhookID     string            `json:"webhook_id"`
	Event         string            `json:"event"`
	Status        string            `json:"status"`
	Attempts      []DeliveryAttempt `json:"attempts"`
	CreatedAt     time.Time         `json:"created_at"`
	NextAttemptAt *time.Time        `json:"next_attempt_at,omitempty"`
}

// CreateWebhook creates a webhook.
func (c *Client) CreateWebhook(ctx context.Context, r WebhookRequest) (*Webhook, error) {
	return call[Webhook](ctx, c, http.MethodPost, "/api/v1/webhooks", r)
}

// Webhooks lists the caller's webhooks (an admin's: every one).
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	out, err := call[[]Webhook](ctx, c, http.MethodGet, "/api/v1/webhooks", nil)
	if err != nil {
		return nil, err
	}
	return *out, nil
}

// Webhook returns one webhook.
func (c *Client) Webhook(ctx context.Context, id string) (*Webhook, error) {
	return call[Webhook](ctx, c, http.MethodGet, "/api/v1/webhooks/"+url.PathEscape(id), nil)
}

// DeleteWebhook deletes a webhook and its delivery log.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/webhooks/"+url.PathEscape(id), nil, nil)
}

// Deliveries lists a webhook's deliveries, newest first.
func (c *Client) Deliveries(ctx context.Context, id string) ([]Delivery, error) {
	out, err := call[[]Delivery](ctx, c, http.MethodGet, "/api/v1/webhooks/"+url.PathEscape(id)+"/deliveries", nil)
	if err != nil {
		return nil, err
	}
	return *out, nil
}

// ReprocessRequest is POST /api/v1/rating/reprocess: Scope "" is every
// scope.
type ReprocessRequest struct {
	Scope  string    `json:"scope,omitempty"`
	Begin  time.Time `json:"begin"`
	End    time.Time `json:"end"`
	DryRun bool      `json:"dry_run"`
}

// PeriodDelta is how one rated period's total moves.
type PeriodDelta struct {
	Scope string          `json:"scope"`
	Begin time.Time       `json:"begin"`
	End   time.Time       `json:"end"`
	Old   decimal.Decimal `json:"old"`
	New   decimal.Decimal `json:"new"`
	Delta decimal.Decimal `json:"delta"`
}

// Reprocessed is what a re-rating moved (or would move, dry).
type Reprocessed struct {
	DryRun  bool            `json:"dry_run"`
	Periods []PeriodDelta   `json:"periods"`
	Delta   decimal.Decimal `json:"delta"`
	Scanned int             `json:"scanned"`
}

// Reprocess re-rates closed periods with today's rules.
func (c *Client) Reprocess(ctx context.Context, r ReprocessRequest) (*Reprocessed, error) {
	return call[Reprocessed](ctx, c, http.MethodPost, "/api/v1/rating/reprocess", r)
}

// StartMachineAnyway starts a machine whose budget is exhausted (admin:
// ?override=1, recorded).
func (c *Client) StartMachineAnyway(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/machines/"+url.PathEscape(id)+"/start?override=1", nil)
}

// ApplyStackAnyway applies a stack whose budget is exhausted (admin:
// ?override=1, recorded).
func (c *Client) ApplyStackAnyway(ctx context.Context, id string) (*JobRef, error) {
	return call[JobRef](ctx, c, http.MethodPost, "/api/v1/stacks/"+url.PathEscape(id)+"/apply?override=1", nil)
}
