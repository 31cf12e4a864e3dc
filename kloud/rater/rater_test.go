package rater_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/kloud/rater"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/writer"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

var t0 = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)

// TestRaterRun: at a tick the rater that holds the lease rates every
// period closed by the wait and writes the reports; when its ticks end it
// gives the lease up.
func TestRaterRun(t *testing.T) {
	tests := []struct {
		name        string
		wait        int
		wantPeriods int
		wantHours   string
	}{
		{name: "no wait: every period up to now", wait: 0, wantPeriods: 5, wantHours: "2"},
		{name: "a wait of two periods", wait: 2, wantPeriods: 3, wantHours: "2"},
		{name: "a wait past the machine's run", wait: 4, wantPeriods: 1, wantHours: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := t0
			clock := func() time.Time { return now }
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			st, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithLogger(quiet), sqlite.WithClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			// One machine runs from t0 for two hours.
			if err := st.PutMachine(ctx, &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox",
				Label: "sandbox_machine.web", State: machinestate.Running, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			if err := st.SetMachineState(ctx, "m-1", machinestate.Stopped, "", t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			now = t0.Add(5 * time.Hour)

			reports := t.TempDir()
			ticks := make(chan time.Time)
			r, err := rater.New(rater.Config{
				Store: st, ReportsDir: reports, Period: time.Hour, WaitPeriods: tt.wait,
				Leases: st, Holder: "replica-1", Interval: time.Minute, Now: clock, Log: quiet,
				Tick: func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} },
			})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); r.Run(ctx) }()
			ticks <- now
			close(ticks) // the tick sent is handled, then Run returns
			<-done

			points, err := st.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1"})
			if err != nil {
				t.Fatal(err)
			}
			periods := map[time.Time]bool{}
			hours := decimal.Zero
			for _, p := range points {
				periods[p.Begin] = true
				hours = hours.Add(p.Qty)
			}
			state, err := st.GetScopeState(ctx, "usr-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := int(state.LastProcessed.Sub(t0) / time.Hour); got != tt.wantPeriods {
				t.Errorf("rated through %v: %d periods, want %d", state.LastProcessed, got, tt.wantPeriods)
			}
			if !hours.Equal(decimal.RequireFromString(tt.wantHours)) {
				t.Errorf("rated %s running hours over %d periods, want %s", hours, len(periods), tt.wantHours)
			}
			reps, err := writer.ListReports(reports)
			if err != nil || len(reps) == 0 {
				t.Errorf("reports after a pass: %v, %v; want the month's", reps, err)
			}
			if r.Held(ctx) {
				t.Error("the rater still holds its lease after Run returned")
			}
		})
	}
}
