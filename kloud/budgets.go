package kloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/kloud/budget"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/kloud/notify"
	"github.com/kloud/kloud/kloud/singleton"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// CostConfig sets the cost control loops: the budget checker, the
// scheduler and the webhook dispatcher each run on one replica at a time
// (a singleton lease each) at their interval.
type CostConfig struct {
	// BudgetInterval is how often budgets are checked (default 30s).
	BudgetInterval time.Duration
	// ScheduleInterval is how often schedules are looked at (default
	// 15s; schedules are cron, minute-level).
	ScheduleInterval time.Duration
	// WebhookInterval is how often due webhook deliveries are tried
	// (default 5s); WebhookBackoff the wait after a first failed attempt,
	// doubled after each further one up to 10m, for an hour (default 5s).
	WebhookInterval time.Duration
	WebhookBackoff  time.Duration
	// Tick makes the loops' ticks (default singleton.RealTicker).
	Tick singleton.Ticker
}

func (c *CostConfig) setDefaults() {
	if c.BudgetInterval <= 0 {
		c.BudgetInterval = 30 * time.Second
	}
	if c.ScheduleInterval <= 0 {
		c.ScheduleInterval = 15 * time.Second
	}
	if c.WebhookInterval <= 0 {
		c.WebhookInterval = 5 * time.Second
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = notify.DefaultBackoff
	}
}

// costControl is the server's cost control: budgets, schedules and
// webhooks, each with its singleton loop.
type costControl struct {
	budgets   *budget.Service
	notifier  *notify.Notifier
	scheduler *scheduler
	loops     []costLoop
}

type costLoop struct {
	loop *singleton.Loop
	pass func(context.Context) error
}

// newCostControl wires cost control to the server.
func newCostControl(s *Server) *costControl {
	cfg := s.cfg.Cost
	cfg.setDefaults()
	c := &costControl{}
	c.notifier = notify.New(notify.Config{
		Store: s.st,
		AllScopes: func(ctx context.Context, ownerID string) bool {
			u, err := s.st.GetUser(ctx, ownerID)
			return err == nil && u.IsAdmin()
		},
		Backoff: cfg.WebhookBackoff,
		Now:     s.cfg.Now,
		Log:     s.log.With("component", "webhooks"),
	})
	c.budgets = &budget.Service{Store: s.st, Spender: s.rating, Actions: costActions{s}, Currency: s.cfg.Currency, Now: s.cfg.Now,
		Log: s.log.With("component", "budgets")}
	c.scheduler = newScheduler(s)
	loop := func(name string, interval time.Duration, pass func(context.Context) error) costLoop {
		return costLoop{loop: &singleton.Loop{Name: name, Holder: s.cfg.WorkerID, Interval: interval, Leases: s.st, Now: s.cfg.Now,
			Tick: cfg.Tick, Log: s.log.With("component", name)}, pass: pass}
	}
	c.loops = []costLoop{
		loop(budget.LeaseName, cfg.BudgetInterval, c.budgets.Check),
		loop(scheduleLease, cfg.ScheduleInterval, c.scheduler.Run),
		loop(webhookLease, cfg.WebhookInterval, func(ctx context.Context) error {
			_, err := c.notifier.DeliverDue(ctx)
			return err
		}),
	}
	return c
}

// webhookLease is the singleton lease of the webhook dispatcher.
const webhookLease = "webhook-dispatcher"

// runCost runs every cost control loop until ctx ends.
func (s *Server) runCost(ctx context.Context) {
	for _, l := range s.cost.loops {
		s.goBackground(func() { l.loop.Run(ctx, l.pass) })
	}
}

// CheckBudgets runs one pass of the budget checker now (tests, admin
// tools).
func (s *Server) CheckBudgets(ctx context.Context) error { return s.cost.budgets.Check(ctx) }

// DeliverWebhooks tries every due webhook delivery now.
func (s *Server) DeliverWebhooks(ctx context.Context) (int, error) {
	return s.cost.notifier.DeliverDue(ctx)
}

// notify sends an event to the webhooks that ask for it; a failure to
// record it is logged, never the caller's.
func (s *Server) notify(ctx context.Context, event, ownerID string, data map[string]any) {
	if s.cost == nil {
		return
	}
	if _, err := s.cost.notifier.Notify(context.WithoutCancel(ctx), notify.Event{Event: event, OwnerID: ownerID, Data: data}); err != nil {
		s.log.Error("record webhook event", slog.String("event", event), slog.String("error", err.Error()))
	}
}

// costActions is what the budget checker and the scheduler do through the
// server.
type costActions struct{ s *Server }

func (a costActions) Notify(ctx context.Context, event, ownerID string, data map[string]any) {
	a.s.notify(ctx, event, ownerID, data)
}

// Stop queues an ordinary stop of m, its reason set first so that the
// stopped machine keeps it.
func (a costActions) Stop(ctx context.Context, m *stack.Machine, reason string) error {
	return a.s.queueWithReason(ctx, m, machinestate.Stop, reason)
}

// queueWithReason gives m reason (in its current state) and queues the
// method's job; the job keeps the reason as the machine's once done.
func (s *Server) queueWithReason(ctx context.Context, m *stack.Machine, method machinestate.Method, reason string) error {
	if err := machinestate.Check(m.State, method); err != nil {
		return fmt.Errorf("machine %s: %w", m.ID, err)
	}
	if busy, err := s.targetBusy(ctx, "machine/"+m.ID); err != nil || busy {
		if err == nil {
			err = fmt.Errorf("machine %s has an active job: %w", m.ID, store.ErrConflict)
		}
		return err
	}
	if err := s.st.SetMachineState(ctx, m.ID, m.State, reason, s.now()); err != nil {
		return err
	}
	kind := jobs.KindStop
	if method == machinestate.Start {
		kind = jobs.KindStart
	}
	job, err := s.queueMachineJob(ctx, m, method, kind)
	if err != nil {
		return err
	}
	s.event(ctx, job.ID, jobs.EventPhase, 0, reason)
	cause := reasonSchedule
	if strings.HasPrefix(reason, budget.ReasonExhausted) {
		cause = "budget"
	}
	s.RecordMachine(ctx, m, "machine."+string(method)+"."+cause, reason)
	return nil
}

// keptReason is the reason a machine keeps after a start or stop job: the
// reason automation gave it before queueing the job (idle, budget, a
// schedule's request of this method), else none.
func keptReason(method machinestate.Method, reason string) string {
	switch {
	case method == machinestate.Stop && (strings.HasPrefix(reason, reasonIdle) || strings.HasPrefix(reason, budget.ReasonExhausted)):
		return reason
	case reason == scheduleRequest(method):
		return reasonSchedule
	}
	return ""
}

// scheduleRequest is the reason a machine holds while the job a schedule
// queued runs: only that job, not a later one of a user, leaves it the
// reason "schedule".
func scheduleRequest(method machinestate.Method) string {
	return reasonSchedule + ": " + string(method) + " requested"
}

// ---- the budget gate ----------------------------------------------------------------

// budgetGate refuses a start or apply in the scope of an exhausted budget
// (409 with the budget), unless an admin asks ?override=1, which is
// recorded.
func (s *Server) budgetGate(r *http.Request, ownerID, stackID, target string) error {
	ctx := r.Context()
	err := s.cost.budgets.Gate(ctx, ownerID, stackID)
	var ee *budget.ExhaustedError
	if !errors.As(err, &ee) {
		return err
	}
	actor := actorFrom(ctx)
	if o := r.URL.Query().Get("override"); actor.IsAdmin() && (o == "1" || o == "true") {
		s.recordOverride(ctx, ee, ownerID, target)
		return nil
	}
	return err
}

// recordOverride records in the audit log that an admin started or
// applied despite an exhausted budget.
func (s *Server) recordOverride(ctx context.Context, ee *budget.ExhaustedError, ownerID, target string) {
	action := "machine.start.override"
	if strings.HasPrefix(target, "stack/") {
		action = "stack.apply.override"
	}
	s.recordAudit(ctx, audit.Entry{Action: action, Target: target, OwnerID: ownerID, Outcome: audit.OutcomeOK, Detail: ee.Error()})
}

// ---- plans ---------------------------------------------------------------------------

// planBudget says whether a plan's hourly estimate, run from now to the end
// of the owner's budget period, fits what is left of it; nil without a
// budget.
func (s *Server) planBudget(ctx context.Context, ownerID string, hourly string) *client.PlanBudget {
	b, err := s.st.GetBudget(ctx, "user:"+ownerID)
	if err != nil {
		return nil
	}
	st, err := s.cost.budgets.Status(ctx, b)
	if err != nil {
		s.log.Error("plan budget", slog.String("owner", ownerID), slog.String("error", err.Error()))
		return nil
	}
	h, err := decimal.NewFromString(hourly)
	if err != nil {
		return nil
	}
	hours := decimal.NewFromInt(int64(st.PeriodEnd.Sub(s.now()))).Div(decimal.NewFromInt(int64(time.Hour)))
	est := h.Mul(hours).Round(6)
	return &client.PlanBudget{Scope: b.Scope, Remaining: st.Remaining, Estimate: est, Fits: !est.GreaterThan(st.Remaining)}
}

// ---- the API --------------------------------------------------------------------------

// budgetRequest is PUT /api/v1/budgets/{scope}.
type budgetRequest struct {
	Amount any    `json:"amount"`
	Period string `json:"period"`
	WarnAt []any  `json:"warn_at"`
	Action string `json:"action"`
}

func (s *Server) budgetRoutes(m *http.ServeMux) {
	a, admin := s.authenticate, s.adminOnly
	m.HandleFunc("GET /api/v1/budgets", a(s.handleListBudgets))
	m.HandleFunc("GET /api/v1/budgets/{scope}", a(s.handleGetBudget))
	m.HandleFunc("PUT /api/v1/budgets/{scope}", admin(s.handlePutBudget))
	m.HandleFunc("DELETE /api/v1/budgets/{scope}", admin(s.handleDeleteBudget))
}

// budgetOwner is the owner of a budget scope's machines: the user, or the
// stack's owner.
func (s *Server) budgetOwner(ctx context.Context, scope string) (string, error) {
	kind, id, err := budget.ParseScope(scope)
	if err != nil {
		return "", unprocessable("scope", "scope %s is not user:<id> or stack:<id>", quote(scope))
	}
	if kind == "user" {
		if _, err := s.st.GetUser(ctx, id); err != nil {
			if errorsIsNotFound(err) {
				err = notFound("user", id)
			}
			return "", err
		}
		return id, nil
	}
	st, err := s.st.GetStack(ctx, id)
	if err != nil {
		if errorsIsNotFound(err) {
			err = notFound("stack", id)
		}
		return "", err
	}
	return st.OwnerID, nil
}

func (s *Server) handlePutBudget(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	scope := r.PathValue("scope")
	var req budgetRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := budgetOf(req)
	if err == nil {
		b.Scope = scope
		b.OwnerID, err = s.budgetOwner(ctx, scope)
		noteAuditOwner(ctx, b.OwnerID)
	}
	if err == nil {
		err = s.st.PutBudget(ctx, b)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.cost.budgets.Status(ctx, b)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// maxBudget bounds an amount.
var maxBudget = decimal.New(1, 12)

// budgetOf checks a budget request.
func budgetOf(req budgetRequest) (*store.Budget, error) {
	amount, err := decimalField("amount", req.Amount, true)
	if err != nil {
		return nil, err
	}
	if !amount.IsPositive() || amount.GreaterThan(maxBudget) {
		return nil, unprocessable("amount", "amount must be positive and at most %s", maxBudget)
	}
	b := &store.Budget{Amount: amount, Period: req.Period, Action: req.Action, WarnAt: []decimal.Decimal{}}
	if b.Period == "" {
		b.Period = store.BudgetMonth
	}
	if b.Period != store.BudgetDay && b.Period != store.BudgetWeek && b.Period != store.BudgetMonth {
		return nil, unprocessable("period", "period %s is not one of day, week, month", quote(b.Period))
	}
	if b.Action == "" {
		b.Action = store.BudgetNotify
	}
	if b.Action != store.BudgetStop && b.Action != store.BudgetNotify {
		return nil, unprocessable("action", "action %s is not one of stop, notify", quote(b.Action))
	}
	if len(req.WarnAt) > 10 {
		return nil, unprocessable("warn_at", "at most 10 warn_at fractions")
	}
	one := decimal.NewFromInt(1)
	for i, v := range req.WarnAt {
		field := fmt.Sprintf("warn_at[%d]", i)
		f, err := decimalField(field, v, true)
		if err != nil {
			return nil, err
		}
		if !f.IsPositive() || f.GreaterThan(one) {
			return nil, unprocessable(field, "%s must be a fraction in (0, 1], e.g. \"0.8\"", field)
		}
		b.WarnAt = append(b.WarnAt, f)
	}
	return b, nil
}

func (s *Server) budgetFor(ctx context.Context, actor *user.User, scope string) (*store.Budget, error) {
	return owned(ctx, actor, "budget", scope, s.st.GetBudget, func(b *store.Budget) string { return b.OwnerID })
}

func (s *Server) handleGetBudget(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b, err := s.budgetFor(ctx, actorFrom(ctx), r.PathValue("scope"))
	var st *client.Budget
	if err == nil {
		st, err = s.cost.budgets.Status(ctx, b)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleListBudgets(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	l, err := parseList(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bs, err := s.st.ListBudgets(ctx, ownerFilter(actorFrom(ctx)))
	out := make([]*client.Budget, 0, len(bs))
	for _, b := range bs {
		if err != nil {
			break
		}
		var st *client.Budget
		if st, err = s.cost.budgets.Status(ctx, b); err == nil {
			out = append(out, st)
		}
	}
	listPage(s, w, r, l, out, err, positionKey, asIs)
}

func (s *Server) handleDeleteBudget(w http.ResponseWriter, r *http.Request) {
	scope := r.PathValue("scope")
	if b, err := s.st.GetBudget(r.Context(), scope); err == nil {
		noteAuditOwner(r.Context(), b.OwnerID)
	}
	err := s.st.DeleteBudget(r.Context(), scope)
	if errorsIsNotFound(err) {
		err = notFound("budget", scope)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
