package kloud_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

// costHarness is a server whose rating runs only when the test asks, on a
// clock the test moves, with hourly periods rated as soon as they close.
func costHarness(t *testing.T, clock *kloudtest.Clock, options ...func(*kloud.Config)) *kloudtest.Harness {
	t.Helper()
	return kloudtest.New(t, append([]func(*kloud.Config){func(c *kloud.Config) {
		c.Now = clock.Now
		c.RatingInterval = time.Hour
		c.RatingPeriod = time.Hour
		c.RatingWaitPeriods = new(0)
		c.AgentTimeout = 24 * time.Hour
	}}, options...)...)
}

// seedRunning stores a machine of owner that has run since since, without
// Terraform: what the collector reads is its state history.
func seedRunning(t *testing.T, h *kloudtest.Harness, id, owner, stackID string, alwaysOn bool, since time.Time) {
	t.Helper()
	err := h.Store.PutMachine(context.Background(), &stack.Machine{ID: id, StackID: stackID, OwnerID: owner, Provider: "sandbox",
		Label: "sandbox_machine." + id, State: machinestate.Running, AlwaysOn: alwaysOn, CreatedAt: since, Metadata: []byte(`{"size":"small"}`)})
	if err != nil {
		t.Fatal(err)
	}
}

// instancePrice creates the service "instance" and returns its id.
func instanceService(t *testing.T, admin *client.Client) string {
	t.Helper()
	svc, err := admin.CreateHashmapService(context.Background(), client.NameRequest{Name: "instance"})
	if err != nil {
		t.Fatal(err)
	}
	return svc.ID
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// summaryTotal is the rating summary's total of scope (every scope when
// empty) in [begin, end).
func summaryTotal(t *testing.T, c *client.Client, q client.SummaryQuery) decimal.Decimal {
	t.Helper()
	sum, err := c.Summary(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	total := decimal.Zero
	for _, row := range sum.Results {
		total = total.Add(dec(*row[3]))
	}
	return total
}

// csvTotal adds the totals rows of every CSV report.
func csvTotal(t *testing.T, c *client.Client) decimal.Decimal {
	t.Helper()
	ctx := context.Background()
	reps, err := c.Reports(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := decimal.Zero
	for _, r := range reps {
		if r.Format != "csv" {
			continue
		}
		var buf bytes.Buffer
		if err := c.Report(ctx, r.Name, &buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		last := rows[len(rows)-1]
		total = total.Add(dec(last[len(last)-1]))
	}
	return total
}

func statusOf(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestRuleValidityAndReprocess: a mapping whose start is in the future
// prices nothing today, in quotes and rated periods alike; a started rule
// can only have its end changed; a dated rule added afterwards changes
// nothing until a re-rating, whose dry run reports the delta that the real
// run then moves the summary total and the CSV total by, exactly.
func TestRuleValidityAndReprocess(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := costHarness(t, clock)
	ctx := context.Background()
	admin := h.Admin
	now := clock.Now().UTC()
	seedRunning(t, h, "m-a", "usr-a", "stk-a", false, now.Add(-6*time.Hour))

	svc := instanceService(t, admin)
	if _, err := admin.CreateHashmapMapping(ctx, client.MappingRequest{ServiceID: svc, Type: client.CostFlat, Cost: dec("1")}); err != nil {
		t.Fatal(err)
	}
	g2, err := admin.CreateHashmapGroup(ctx, client.NameRequest{Name: "future"})
	if err != nil {
		t.Fatal(err)
	}
	tomorrow := now.Add(24 * time.Hour).Truncate(time.Second)
	future, err := admin.CreateHashmapMapping(ctx, client.MappingRequest{ServiceID: svc, GroupID: g2.ID, Type: client.CostFlat, Cost: dec("5"), Start: &tomorrow})
	if err != nil {
		t.Fatal(err)
	}
	if future.Start == nil || !future.Start.Equal(tomorrow) {
		t.Errorf("created mapping start = %v, want %v", future.Start, tomorrow)
	}
	q, err := admin.Quote(ctx, client.QuoteRequest{Points: []client.QuotePoint{{Service: "instance", Qty: dec("1"), Unit: "hour"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !q.Total.Equal(dec("1")) {
		t.Errorf("quote of an hour = %s, want 1: the mapping starting tomorrow prices nothing today", q.Total)
	}
	if _, err := admin.ProcessRating(ctx); err != nil {
		t.Fatal(err)
	}
	before := summaryTotal(t, admin, client.SummaryQuery{})
	hours := decimal.Zero
	pts, err := admin.DataFrames(ctx, client.SummaryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pts {
		for _, p := range f.Usage["instance"] {
			hours = hours.Add(p.Vol.Qty)
		}
	}
	if !before.Equal(hours) || before.IsZero() {
		t.Fatalf("rated total %s, want the %s running hours at 1 (the future mapping prices nothing)", before, hours)
	}
	csvBefore := csvTotal(t, admin)
	if !csvBefore.Equal(before) {
		t.Fatalf("CSV total %s != summary total %s", csvBefore, before)
	}

	// A rule dated in the past: added now, it changes no rated period
	// until they are re-rated.
	g3, err := admin.CreateHashmapGroup(ctx, client.NameRequest{Name: "surcharge"})
	if err != nil {
		t.Fatal(err)
	}
	start, end := now.Add(-4*time.Hour).Truncate(time.Hour), now.Add(-2*time.Hour).Truncate(time.Hour)
	past, err := admin.CreateHashmapMapping(ctx, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.5"), Start: &start, End: &end})
	if err != nil {
		t.Fatal(err)
	}
	// Started: changing its cost is refused, changing its end is not.
	_, err = admin.UpdateHashmapMapping(ctx, past.ID, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.7"), Start: &start, End: &end})
	if statusOf(err) != http.StatusConflict {
		t.Errorf("change the cost of a started rule: %v, want 409", err)
	}
	later := start.Add(time.Minute)
	_, err = admin.UpdateHashmapMapping(ctx, past.ID, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.5"), Start: &later, End: &end})
	if statusOf(err) != http.StatusConflict {
		t.Errorf("move the start of a started rule: %v, want 409", err)
	}
	newEnd := end.Add(time.Hour)
	got, err := admin.UpdateHashmapMapping(ctx, past.ID, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.5"), Start: &start, End: &newEnd})
	if err != nil {
		t.Fatalf("change the end of a started rule: %v", err)
	}
	if got.End == nil || !got.End.Equal(newEnd) {
		t.Errorf("end after update = %v, want %v", got.End, newEnd)
	}
	if m, err := admin.HashmapMapping(ctx, past.ID); err != nil || m.End == nil || !m.End.Equal(newEnd) {
		t.Errorf("GET mapping = %+v, %v; want end %v", m, err, newEnd)
	}

	window := client.ReprocessRequest{Begin: now.Add(-48 * time.Hour), End: now.Add(time.Hour), DryRun: true}
	dry, err := admin.Reprocess(ctx, window)
	if err != nil {
		t.Fatal(err)
	}
	// Three whole hours inside the validity, at 0.5 each.
	if !dry.Delta.Equal(dec("1.5")) || len(dry.Periods) != 3 {
		t.Errorf("dry run = %+v, want 3 periods moving 1.5", dry)
	}
	if after := summaryTotal(t, admin, client.SummaryQuery{}); !after.Equal(before) {
		t.Fatalf("a dry run moved the summary total from %s to %s", before, after)
	}
	window.DryRun = false
	real, err := admin.Reprocess(ctx, window)
	if err != nil {
		t.Fatal(err)
	}
	if !real.Delta.Equal(dry.Delta) {
		t.Errorf("real delta %s != dry delta %s", real.Delta, dry.Delta)
	}
	after := summaryTotal(t, admin, client.SummaryQuery{})
	if moved := after.Sub(before); !moved.Equal(dry.Delta) {
		t.Errorf("summary total moved by %s, the dry run said %s", moved, dry.Delta)
	}
	if moved := csvTotal(t, admin).Sub(csvBefore); !moved.Equal(dry.Delta) {
		t.Errorf("CSV total moved by %s, the dry run said %s", moved, dry.Delta)
	}
	again, err := admin.Reprocess(ctx, window)
	if err != nil || !again.Delta.IsZero() || len(again.Periods) != 0 {
		t.Errorf("a second re-rating = %+v, %v; want nothing to move", again, err)
	}
	for _, bad := range []client.ReprocessRequest{{Begin: now, End: now.Add(-time.Hour)}, {Scope: "usr-nobody", Begin: now.Add(-time.Hour), End: now}} {
		if _, err := admin.Reprocess(ctx, bad); statusOf(err) < 400 || statusOf(err) >= 500 {
			t.Errorf("reprocess %+v: %v, want a 4xx", bad, err)
		}
	}
}
