package store

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/stack"
)

// Cost control: budgets on metered cost, machine and stack schedules,
// webhooks with their deliveries, validity dates of hashmap rules, and the
// rewrite of rated periods that re-rating needs.

// Cost is every aggregate of cost control.
type Cost interface {
	Budgets
	Schedules
	Webhooks
	RuleValidities
	RatedRewriter
}

// ---- budgets -------------------------------------------------------------------

// Budget periods and actions.
const (
	BudgetDay   = "day"
	BudgetWeek  = "week"
	BudgetMonth = "month"

	BudgetStop   = "stop"
	BudgetNotify = "notify"
)

// Budget is a spending limit on one scope ("user:<id>" or "stack:<id>")
// per calendar period (UTC), with the fractions that warn and what happens
// at 100 %. PeriodStart and Notified are the budget checker's progress:
// the period it last looked at and the fractions ("0.8", "1") it already
// notified in that period.
type Budget struct {
	Scope   string            `json:"scope"`
	OwnerID string            `json:"owner_id"`
	Amount  decimal.Decimal   `json:"amount"`
	Period  string            `json:"period"`
	WarnAt  []decimal.Decimal `json:"warn_at"`
	Action  string            `json:"action"`

	PeriodStart time.Time `json:"period_start,omitzero"`
	Notified    []string  `json:"notified,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Budgets stores budgets, one per scope.
type Budgets interface {
	// PutBudget creates the scope's budget or replaces its amount,
	// period, warn_at, action and owner; the checker's progress stays.
	PutBudget(ctx context.Context, b *Budget) error
	GetBudget(ctx context.Context, scope string) (*Budget, error)
	// ListBudgets lists the budgets of ownerID (all when empty), by scope.
	ListBudgets(ctx context.Context, ownerID string) ([]*Budget, error)
	DeleteBudget(ctx context.Context, scope string) error
	// SetBudgetProgress records the checker's progress of a budget;
	// ErrNotFound when it does not exist.
	SetBudgetProgress(ctx context.Context, scope string, periodStart time.Time, notified []string) error
}

// CheckBudget is what every backend requires of a budget.
func CheckBudget(b *Budget) error {
	if b == nil {
		return Invalidf("put budget: nil budget")
	}
	kind, id, ok := strings.Cut(b.Scope, ":")
	if !ok || (kind != "user" && kind != "stack") || id == "" {
		return Invalidf("put budget: scope %q is not user:<id> or stack:<id>", clip(b.Scope))
	}
	if b.OwnerID == "" {
		return Invalidf("put budget %s: empty owner_id", b.Scope)
	}
	if !b.Amount.IsPositive() {
		return Invalidf("put budget %s: amount %s is not positive", b.Scope, b.Amount)
	}
	if b.Period != BudgetDay && b.Period != BudgetWeek && b.Period != BudgetMonth {
		return Invalidf("put budget %s: period %q is not day, week or month", b.Scope, clip(b.Period))
	}
	if b.Action != BudgetStop && b.Action != BudgetNotify {
		return Invalidf("put budget %s: action %q is not stop or notify", b.Scope, clip(b.Action))
	}
	if len(b.WarnAt) > 10 {
		return Invalidf("put budget %s: at most 10 warn_at fractions", b.Scope)
	}
	for _, f := range b.WarnAt {
		if !f.IsPositive() || f.GreaterThan(decimal.NewFromInt(1)) {
			return Invalidf("put budget %s: warn_at %s is not in (0, 1]", b.Scope, f)
		}
	}
	return nil
}

// ---- schedules -------------------------------------------------------------------

// Schedule starts and stops a machine ("machine/<id>") or every machine of
// a stack ("stack/<id>") by cron expressions in a time zone. Checked is
// how far the scheduler has looked: firings after it and up to now are
// due.
type Schedule struct {
	Target    string    `json:"target"`
	OwnerID   string    `json:"owner_id"`
	Autostart string    `json:"autostart,omitempty"`
	Autostop  string    `json:"autostop,omitempty"`
	Timezone  string    `json:"timezone"`
	Checked   time.Time `json:"checked_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Schedules stores schedules, one per target.
type Schedules interface {
	// PutSchedule creates or replaces the target's schedule.
	PutSchedule(ctx context.Context, s *Schedule) error
	GetSchedule(ctx context.Context, target string) (*Schedule, error)
	// ListSchedules lists every schedule, by target.
	ListSchedules(ctx context.Context) ([]*Schedule, error)
	DeleteSchedule(ctx context.Context, target string) error
	// SetScheduleChecked moves a schedule's Checked forward (never back).
	SetScheduleChecked(ctx context.Context, target string, at time.Time) error
}

// CheckSchedule is what every backend requires of a schedule.
func CheckSchedule(s *Schedule) error {
	if s == nil {
		return Invalidf("put schedule: nil schedule")
	}
	kind, id, ok := strings.Cut(s.Target, "/")
	if !ok || (kind != "machine" && kind != "stack") || id == "" {
		return Invalidf("put schedule: target %q is not machine/<id> or stack/<id>", clip(s.Target))
	}
	if s.OwnerID == "" {
		return Invalidf("put schedule %s: empty owner_id", s.Target)
	}
	if s.Autostart == "" && s.Autostop == "" {
		return Invalidf("put schedule %s: neither autostart nor autostop", s.Target)
	}
	return nil
}

// ---- webhooks and deliveries ---------------------------------------------------

// Webhook sends the events it names, signed with its secret, to its URL.
// The secret is sealed at rest and never encoded.
type Webhook struct {
	ID        string       `json:"id"`
	OwnerID   string       `json:"owner_id"`
	URL       string       `json:"url"`
	Events    []string     `json:"events"`
	Secret    stack.Secret `json:"-"`
	CreatedAt time.Time    `json:"created_at"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Attempt is one try of a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Delivery is one event sent (or being sent) to one webhook, with every
// attempt. NextAt is when the next attempt is due while it is pending.
type Delivery struct {
	ID        string    `json:"id"`
	WebhookID string    `json:"webhook_id"`
	Event     string    `json:"event"`
	Body      []byte    `json:"-"`
	Status    string    `json:"status"`
	Attempts  []Attempt `json:"attempts"`
	CreatedAt time.Time `json:"created_at"`
	NextAt    time.Time `json:"next_attempt_at,omitzero"`
}

// Webhooks stores webhooks and their deliveries.
type Webhooks interface {
	CreateWebhook(ctx context.Context, w *Webhook) error
	GetWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks lists the webhooks of ownerID (all when empty), oldest
	// first.
	ListWebhooks(ctx context.Context, ownerID string) ([]*Webhook, error)
	// DeleteWebhook deletes a webhook and its deliveries.
	DeleteWebhook(ctx context.Context, id string) error

	// CreateDelivery stores a new delivery of an existing webhook.
	CreateDelivery(ctx context.Context, d *Delivery) error
	// UpdateDelivery records a delivery's status, attempts and NextAt,
	// if its attempts are still prev (ErrConflict otherwise: another
	// sender got there first).
	UpdateDelivery(ctx context.Context, d *Delivery, prev int) error
	// ListDeliveries lists a webhook's deliveries, newest first, at most
	// limit (all when limit <= 0).
	ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*Delivery, error)
	// DueDeliveries lists pending deliveries whose NextAt is at or before
	// now, oldest first, at most limit.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*Delivery, error)
}

// CheckWebhook is what every backend requires of a new webhook; it
// returns the id to store it under.
func CheckWebhook(w *Webhook) (string, error) {
	if w == nil {
		return "", Invalidf("create webhook: nil webhook")
	}
	if w.OwnerID == "" {
		return "", Invalidf("create webhook: empty owner_id")
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", Invalidf("create webhook: url %q is not an http or https URL", clip(w.URL))
	}
	if len(w.Events) == 0 {
		return "", Invalidf("create webhook: no events")
	}
	if w.Secret == "" {
		return "", Invalidf("create webhook: empty secret")
	}
	return idOr(w.ID, "wh-"), nil
}

// CheckDelivery is what every backend requires of a new delivery; it
// returns the id to store it under.
func CheckDelivery(d *Delivery) (string, error) {
	if d == nil {
		return "", Invalidf("create delivery: nil delivery")
	}
	if d.WebhookID == "" || d.Event == "" {
		return "", Invalidf("create delivery: empty webhook_id or event")
	}
	if !slices.Contains([]string{DeliveryPending, DeliveryDelivered, DeliveryFailed}, d.Status) {
		return "", Invalidf("create delivery: status %q is not pending, delivered or failed", clip(d.Status))
	}
	return idOr(d.ID, "dlv-"), nil
}

// ---- rule validity ------------------------------------------------------------------

// RuleValidity is when a hashmap mapping or threshold prices: periods
// inside [Start, End); a zero side is open.
type RuleValidity struct {
	RuleID string    `json:"rule_id"`
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
}

// Covers reports whether the period [begin, end) lies inside the validity.
func (v RuleValidity) Covers(begin, end time.Time) bool {
	return (v.Start.IsZero() || !v.Start.After(begin)) && (v.End.IsZero() || !v.End.Before(end))
}

// RuleValidities stores the validity of hashmap rules; a rule without one
// is valid always.
type RuleValidities interface {
	// PutRuleValidity sets a rule's validity (deleting it when both sides
	// are open).
	PutRuleValidity(ctx context.Context, v *RuleValidity) error
	// ListRuleValidities lists every validity, by rule id.
	ListRuleValidities(ctx context.Context) ([]*RuleValidity, error)
	// DeleteRuleValidity removes a rule's validity; none is a no-op.
	DeleteRuleValidity(ctx context.Context, ruleID string) error
}

// CheckRuleValidity is what every backend requires of a validity; it
// returns its sides in Unix nanoseconds, 0 for an open side (both 0: the
// rule is valid always, and its validity is deleted).
func CheckRuleValidity(v *RuleValidity) (start, end int64, err error) {
	if v == nil || v.RuleID == "" {
		return 0, 0, Invalidf("put rule validity: empty rule_id")
	}
	if !v.Start.IsZero() && !v.End.IsZero() && !v.End.After(v.Start) {
		return 0, 0, Invalidf("put rule validity of %s: end %s is not after start %s", v.RuleID,
			v.End.UTC().Format(time.RFC3339), v.Start.UTC().Format(time.RFC3339))
	}
	if start, err = OptUnixNanos("start", v.Start); err == nil {
		end, err = OptUnixNanos("end", v.End)
	}
	return start, end, wrapf(err, "put rule validity of %s", v.RuleID)
}

// ---- re-rating ----------------------------------------------------------------------

// RatedRewriter replaces the points of a period already rated.
type RatedRewriter interface {
	// ReplaceRatedPeriod replaces every point of the scope's period
	// [p.Begin, p.End) with p.Points, all or nothing; the scope's state
	// stays. A period that was never committed is ErrNotFound.
	ReplaceRatedPeriod(ctx context.Context, p *RatedPeriod) error
}

// clip cuts a value quoted in an error to 64 characters.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
