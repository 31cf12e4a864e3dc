// Package budget is cost control on metered cost: a budget limits what a
// member's or a stack's machines may cost per calendar period; its spent
// is the rated cost of the period plus the running time not rated yet,
// priced now by the same pipeline; the checker warns once per period at
// each fraction, and at 100 % stops the machines that are not always_on.
package budget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ReasonExhausted starts the reason of a machine stopped because its
// budget is exhausted.
const ReasonExhausted = "budget exhausted"

// LeaseName is the singleton lease of the budget checker.
const LeaseName = "budget-checker"

// exhaustedMark is what Notified holds once the exhaustion was handled.
const exhaustedMark = "1"

// Store is what budgets keep and read.
type Store interface {
	GetBudget(ctx context.Context, scope string) (*store.Budget, error)
	ListBudgets(ctx context.Context, ownerID string) ([]*store.Budget, error)
	SetBudgetProgress(ctx context.Context, scope string, periodStart time.Time, notified []string) error
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
}

// Spender prices a scope's spending (rater.Rater).
type Spender interface {
	Spend(ctx context.Context, q ratingbridge.SpendQuery) (ratingbridge.Spend, error)
}

// Actions is what the checker does at a threshold.
type Actions interface {
	// Notify sends event about owner with data to the webhooks.
	Notify(ctx context.Context, event, ownerID string, data map[string]any)
	// Stop queues an ordinary stop of m with reason.
	Stop(ctx context.Context, m *stack.Machine, reason string) error
}

// Service computes budgets' standing and checks them.
type Service struct {
	Store    Store
	Spender  Spender
	Actions  Actions
	Currency string
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// ParseScope splits "user:<id>" or "stack:<id>".
func ParseScope(scope string) (kind, id string, err error) {
	kind, id, ok := strings.Cut(scope, ":")
	if !ok || (kind != "user" && kind != "stack") || id == "" || len(id) > 128 {
		return "", "", fmt.Errorf("scope %q is not user:<id> or stack:<id>: %w", clip(scope), store.ErrInvalid)
	}
	return kind, id, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// PeriodBounds is the calendar period (UTC) of length period holding t.
func PeriodBounds(period string, t time.Time) (start, end time.Time) {
	switch period {
	case store.BudgetDay:
		start = store.BucketStart(store.KeyDay, t)
		return start, start.AddDate(0, 0, 1)
	case store.BudgetWeek:
		start = store.BucketStart(store.KeyWeek, t)
		return start, start.AddDate(0, 0, 7)
	}
	start = store.BucketStart(store.KeyMonth, t)
	return start, start.AddDate(0, 1, 0)
}

// query is the spend query of b at now.
func query(b *store.Budget, now time.Time) ratingbridge.SpendQuery {
	start, _ := PeriodBounds(b.Period, now)
	q := ratingbridge.SpendQuery{Owner: b.OwnerID, Begin: start, Now: now}
	if kind, id, err := ParseScope(b.Scope); err == nil && kind == "stack" {
		q.StackID = id
	}
	return q
}

// Status is b's standing at the service's now.
func (s *Service) Status(ctx context.Context, b *store.Budget) (*client.Budget, error) {
	return s.statusAt(ctx, b, s.now())
}

func (s *Service) statusAt(ctx context.Context, b *store.Budget, now time.Time) (*client.Budget, error) {
	q := query(b, now)
	sp, err := s.Spender.Spend(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("budget %s: %w", b.Scope, err)
	}
	_, end := PeriodBounds(b.Period, now)
	hoursLeft := decimal.NewFromInt(int64(end.Sub(now))).Div(decimal.NewFromInt(int64(time.Hour)))
	st := &client.Budget{
		Scope: b.Scope, OwnerID: b.OwnerID, Amount: b.Amount, Period: b.Period, WarnAt: b.WarnAt, Action: b.Action,
		Spent: sp.Total, Rated: sp.Rated, Live: sp.Live, Hourly: sp.Hourly, RatedThrough: sp.RatedThrough,
		Forecast:    sp.Total.Add(sp.Hourly.Mul(hoursLeft)).Round(6),
		Remaining:   decimal.Max(decimal.Zero, b.Amount.Sub(sp.Total)),
		PeriodStart: q.Begin, PeriodEnd: end, Currency: s.Currency, State: client.BudgetOK,
	}
	if st.WarnAt == nil {
		st.WarnAt = []decimal.Decimal{}
	}
	switch {
	case !sp.Total.LessThan(b.Amount):
		st.State = client.BudgetExhausted
	case slices.ContainsFunc(b.WarnAt, func(f decimal.Decimal) bool { return !sp.Total.LessThan(f.Mul(b.Amount)) }):
		st.State = client.BudgetWarned
	}
	return st, nil
}

// ExhaustedError refuses a start or apply while a budget of its scope is
// exhausted.
type ExhaustedError struct {
	Budget *client.Budget
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("budget %s is exhausted (spent %s of %s this %s); an admin may start anyway with ?override=1",
		e.Budget.Scope, Money(e.Budget.Spent), Money(e.Budget.Amount), e.Budget.Period)
}

// Money shows an amount with two decimal places, more when it has them.
func Money(d decimal.Decimal) string {
	places := max(int32(2), -d.Exponent())
	return d.StringFixed(min(places, 8))
}

// Gate returns an *ExhaustedError when the budget of the owner, or of the
// stack (when given), is exhausted now.
func (s *Service) Gate(ctx context.Context, ownerID, stackID string) error {
	scopes := []string{"user:" + ownerID}
	if stackID != "" {
		scopes = append(scopes, "stack:"+stackID)
	}
	for _, scope := range scopes {
		b, err := s.Store.GetBudget(ctx, scope)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		st, err := s.Status(ctx, b)
		if err != nil {
			return err
		}
		if st.State == client.BudgetExhausted {
			return &ExhaustedError{Budget: st}
		}
	}
	return nil
}

// Check looks at every budget once: it notifies each warn fraction
// reached (once per period), and at 100 % notifies the exhaustion and,
// with action stop, stops the scope's running machines that are not
// always_on (once per period: a machine an admin starts anyway keeps
// running).
func (s *Service) Check(ctx context.Context) error {
	budgets, err := s.Store.ListBudgets(ctx, "")
	if err != nil {
		return fmt.Errorf("check budgets: %w", err)
	}
	var errs []error
	for _, b := range budgets {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.check(ctx, b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) check(ctx context.Context, b *store.Budget) error {
	now := s.now()
	st, err := s.statusAt(ctx, b, now)
	if err != nil {
		return err
	}
	notified := b.Notified
	if !b.PeriodStart.Equal(st.PeriodStart) {
		notified = nil // a new period warns afresh
	}
	changed := !b.PeriodStart.Equal(st.PeriodStart)
	data := func() map[string]any {
		return map[string]any{"scope": b.Scope, "amount": b.Amount.String(), "spent": st.Spent.String(), "forecast": st.Forecast.String(),
			"period": b.Period, "period_start": st.PeriodStart, "currency": s.Currency, "state": st.State}
	}
	warns := slices.Clone(b.WarnAt)
	slices.SortFunc(warns, func(a, b decimal.Decimal) int { return a.Cmp(b) })
	for _, f := range warns {
		key := f.String()
		if slices.Contains(notified, key) || st.Spent.LessThan(f.Mul(b.Amount)) {
			continue
		}
		d := data()
		d["fraction"] = key
		s.Actions.Notify(ctx, "budget.warned", b.OwnerID, d)
		notified = append(notified, key)
		changed = true
	}
	if st.State == client.BudgetExhausted && !slices.Contains(notified, exhaustedMark) {
		d := data()
		stopped, kept := []string{}, []string{}
		if b.Action == store.BudgetStop {
			var err error
			if stopped, kept, err = s.stopScope(ctx, b, st); err != nil {
				// Not marked: the next pass stops what is left.
				return fmt.Errorf("check budget %s: %w", b.Scope, err)
			}
		}
		d["action"] = b.Action
		d["stopped"] = stopped
		d["always_on"] = kept
		s.Actions.Notify(ctx, "budget.exhausted", b.OwnerID, d)
		notified = append(notified, exhaustedMark)
		changed = true
	}
	if !changed {
		return nil
	}
	if err := s.Store.SetBudgetProgress(ctx, b.Scope, st.PeriodStart, notified); err != nil {
		return fmt.Errorf("check budget %s: %w", b.Scope, err)
	}
	return nil
}

// stopScope stops the running machines of b's scope that are not
// always_on and returns their ids, and the ids of the always_on ones that
// keep running.
func (s *Service) stopScope(ctx context.Context, b *store.Budget, st *client.Budget) (stopped, kept []string, err error) {
	q := query(b, s.now())
	ms, err := s.Store.ListMachines(ctx, store.MachineFilter{OwnerID: b.OwnerID, StackID: q.StackID})
	if err != nil {
		return nil, nil, err
	}
	reason := fmt.Sprintf("%s (spent %s of %s)", ReasonExhausted, Money(st.Spent), Money(b.Amount))
	stopped, kept = []string{}, []string{}
	var errs []error
	for _, m := range ms {
		if m.State != machinestate.Running {
			continue
		}
		if m.AlwaysOn {
			kept = append(kept, m.ID)
			continue
		}
		if err := s.Actions.Stop(ctx, m, reason); err != nil {
			errs = append(errs, fmt.Errorf("stop machine %s: %w", m.ID, err))
			continue
		}
		stopped = append(stopped, m.ID)
	}
	return stopped, kept, errors.Join(errs...)
}
