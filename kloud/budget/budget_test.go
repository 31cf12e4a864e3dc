package budget_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/budget"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// spender spends what the test says.
type spender struct {
	mu     sync.Mutex
	total  decimal.Decimal
	hourly decimal.Decimal
}

func (s *spender) set(total string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total = dec(total)
}

func (s *spender) Spend(_ context.Context, q ratingbridge.SpendQuery) (ratingbridge.Spend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ratingbridge.Spend{Rated: s.total, Live: decimal.Zero, Total: s.total, Hourly: s.hourly, RatedThrough: q.Now}, nil
}

// actions records what the checker did.
type actions struct {
	mu      sync.Mutex
	events  []string
	data    []map[string]any
	stopped map[string]string
}

func (a *actions) Notify(_ context.Context, event, owner string, data map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, event+" "+owner)
	a.data = append(a.data, data)
}

func (a *actions) Stop(_ context.Context, m *stack.Machine, reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped[m.ID] = reason
	return nil
}

func (a *actions) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.events
	a.events = nil
	return out
}

// TestCheck: each warn fraction is notified once per period, the
// exhaustion once, with the running machines that are not always_on
// stopped with the budget reason and the always_on one listed; a new
// period warns afresh; a notify budget stops nothing.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	clock := testenv.NewFakeClock(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithLogger(slog.New(slog.DiscardHandler)), sqlite.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, m := range []*stack.Machine{
		{ID: "m-web", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", State: machinestate.Running},
		{ID: "m-db", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", State: machinestate.Running, AlwaysOn: true},
		{ID: "m-off", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", State: machinestate.Stopped},
		{ID: "m-other", StackID: "stk-2", OwnerID: "usr-2", Provider: "sandbox", State: machinestate.Running},
	} {
		if err := st.PutMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutBudget(ctx, &store.Budget{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("10"), Period: store.BudgetMonth,
		WarnAt: []decimal.Decimal{dec("0.8"), dec("0.5")}, Action: store.BudgetStop}); err != nil {
		t.Fatal(err)
	}
	sp := &spender{hourly: dec("0.1")}
	act := &actions{stopped: map[string]string{}}
	svc := &budget.Service{Store: st, Spender: sp, Actions: act, Now: clock.Now, Currency: "USD"}

	steps := []struct {
		spent      string
		advance    time.Duration
		wantEvents []string
		wantState  string
	}{
		{spent: "4.99", wantState: client.BudgetOK},
		{spent: "5", wantEvents: []string{"budget.warned usr-1"}, wantState: client.BudgetWarned},
		{spent: "6", wantState: client.BudgetWarned},
		{spent: "10.01", wantEvents: []string{"budget.warned usr-1", "budget.exhausted usr-1"}, wantState: client.BudgetExhausted},
		{spent: "12", wantState: client.BudgetExhausted},
		// A new month: the progress starts again.
		{spent: "1", advance: 31 * 24 * time.Hour, wantState: client.BudgetOK},
		{spent: "9", wantEvents: []string{"budget.warned usr-1", "budget.warned usr-1"}, wantState: client.BudgetWarned},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		sp.set(step.spent)
		if err := svc.Check(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := act.take(); !slices.Equal(got, step.wantEvents) {
			t.Errorf("step %d (spent %s): events %v, want %v", i, step.spent, got, step.wantEvents)
		}
		b, err := st.GetBudget(ctx, "user:usr-1")
		if err != nil {
			t.Fatal(err)
		}
		status, err := svc.Status(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if status.State != step.wantState {
			t.Errorf("step %d (spent %s): state %s, want %s", i, step.spent, status.State, step.wantState)
		}
	}
	if len(act.stopped) != 1 || act.stopped["m-web"] != "budget exhausted (spent 10.01 of 10.00)" {
		t.Errorf("stopped %v, want only m-web with the budget reason", act.stopped)
	}
	var exhausted map[string]any
	for _, d := range act.data {
		if d["state"] == client.BudgetExhausted {
			exhausted = d
		}
	}
	if exhausted == nil || !slices.Equal(exhausted["always_on"].([]string), []string{"m-db"}) || !slices.Equal(exhausted["stopped"].([]string), []string{"m-web"}) {
		t.Errorf("exhausted notification = %v, want m-web stopped and m-db listed as always_on", exhausted)
	}

	// Forecast: spent plus the hourly price of running machines until
	// the end of the month.
	b, _ := st.GetBudget(ctx, "user:usr-1")
	status, _ := svc.Status(ctx, b)
	hours := decimal.NewFromInt(int64(status.PeriodEnd.Sub(clock.Now()))).Div(decimal.NewFromInt(int64(time.Hour)))
	if want := dec("9").Add(dec("0.1").Mul(hours)).Round(6); !status.Forecast.Equal(want) {
		t.Errorf("forecast %s, want %s", status.Forecast, want)
	}

	// The gate refuses while exhausted.
	sp.set("10")
	if err := svc.Gate(ctx, "usr-1", "stk-1"); err == nil {
		t.Error("gate let a start through an exhausted budget")
	}
	if err := svc.Gate(ctx, "usr-2", "stk-2"); err != nil {
		t.Errorf("gate of an owner without a budget: %v", err)
	}
}

func TestPeriodBounds(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 30, 0, 0, time.UTC) // a Thursday
	for _, tt := range []struct {
		period     string
		start, end time.Time
	}{
		{store.BudgetDay, time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)},
		{store.BudgetWeek, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
		{store.BudgetMonth, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		s, e := budget.PeriodBounds(tt.period, at)
		if !s.Equal(tt.start) || !e.Equal(tt.end) {
			t.Errorf("%s: [%v, %v), want [%v, %v)", tt.period, s, e, tt.start, tt.end)
		}
	}
}
