package kloud_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

type summary struct {
	Total   int      `json:"total"`
	Columns []string `json:"columns"`
	Results [][]any  `json:"results"`
}

// column returns the decimal in row's named column.
func (s summary) column(t *testing.T, row []any, name string) decimal.Decimal {
	t.Helper()
	for i, c := range s.Columns {
		if c == name {
			d, err := decimal.NewFromString(fmt.Sprint(row[i]))
			if err != nil {
				t.Fatalf("column %s = %v: %v", name, row[i], err)
			}
			return d
		}
	}
	t.Fatalf("no column %s in %v", name, s.Columns)
	return decimal.Decimal{}
}

// TestBillingEndToEnd runs a sandbox machine for a measured time on a clock
// the test moves, stops it, rates the closed periods and checks the bill:
// the machine is billed the hours it ran (within a second) at the
// configured rate, and the CSV report's total is the summary's.
func TestBillingEndToEnd(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.RatingInterval = time.Hour // the test triggers processing itself
		c.AgentTimeout = 24 * time.Hour
	})
	ctx := context.Background()
	admin := h.Admin

	// Price: 0.12 an hour for a small machine, 0.30 for a medium one.
	var svc struct {
		ID string `json:"service_id"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/services", map[string]string{"name": "instance"}, &svc); err != nil {
		t.Fatal(err)
	}
	var field struct {
		ID string `json:"field_id"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/fields", map[string]string{"service_id": svc.ID, "name": "size"}, &field); err != nil {
		t.Fatal(err)
	}
	for size, cost := range map[string]string{"small": "0.12", "medium": "0.30"} {
		if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/mappings", map[string]string{"field_id": field.ID, "value": size, "type": "flat", "cost": cost}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A service mapping with a value is refused, naming the field.
	err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/mappings", map[string]string{"service_id": svc.ID, "value": "x", "type": "flat", "cost": "1"}, nil)
	if apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("service mapping with a value: %v, want 422", err)
	}

	credID, tplID := setup(t, admin)
	plan, err := admin.PlanTemplate(ctx, tplID, client.PlanRequest{CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	if plan.CostEstimate.Hourly != "0.42" {
		t.Errorf("estimate = %+v, want 0.42 an hour (0.12 + 0.30)", plan.CostEstimate)
	}

	st, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "billed", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	var web client.Machine
	for _, m := range st.Machines {
		if strings.Contains(m.Label, "web") {
			web = m
		}
	}

	clock.Advance(90 * time.Minute)
	ref, err = admin.StopMachine(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	m, err := admin.Machine(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	ran := decimal.NewFromInt(m.UptimeSeconds).Div(decimal.NewFromInt(3600))

	// Let every period holding the run close, then rate.
	clock.Advance(3 * time.Hour)
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/process", nil, nil); err != nil {
		t.Fatal(err)
	}

	var byMachine summary
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/summary?groupby=machine_id&filters=machine_id:"+web.ID, nil, &byMachine); err != nil {
		t.Fatal(err)
	}
	if byMachine.Total != 1 {
		t.Fatalf("summary of the web machine = %+v", byMachine)
	}
	qty := byMachine.column(t, byMachine.Results[0], "qty")
	if diff := qty.Sub(ran).Abs(); diff.GreaterThan(decimal.NewFromFloat(1.0 / 3600)) {
		t.Errorf("billed %s hours, ran %s hours", qty, ran)
	}
	if !qty.GreaterThanOrEqual(decimal.NewFromFloat(1.49)) {
		t.Errorf("billed %s hours; the machine ran about 1.5", qty)
	}
	rate := byMachine.column(t, byMachine.Results[0], "rate")
	if want := qty.Mul(decimal.RequireFromString("0.12")); !rate.Equal(want) {
		t.Errorf("price %s, want qty × 0.12 = %s", rate, want)
	}

	// Members see none of it.
	member := h.Member(t, "carol")
	var theirs summary
	if err := member.Do(ctx, http.MethodGet, "/api/v1/rating/summary", nil, &theirs); err != nil {
		t.Fatal(err)
	}
	if theirs.Total != 0 {
		t.Errorf("member summary = %+v, want nothing", theirs)
	}

	// The CSV report's total is the summary's total.
	var all summary
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/summary", nil, &all); err != nil {
		t.Fatal(err)
	}
	summaryTotal := all.column(t, all.Results[0], "rate")
	var reports []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/reports", nil, &reports); err != nil {
		t.Fatal(err)
	}
	csvTotal := decimal.Zero
	found := 0
	for _, r := range reports {
		if r.Format != "csv" {
			continue
		}
		found++
		var buf bytes.Buffer
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/reports/"+r.Name, nil, &buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("report %s: %v", r.Name, err)
		}
		last := rows[len(rows)-1]
		if last[0] != "total" {
			t.Fatalf("report %s has no totals row: %v", r.Name, last)
		}
		csvTotal = csvTotal.Add(decimal.RequireFromString(last[len(last)-1]))
	}
	if found == 0 {
		t.Fatalf("no CSV report among %+v", reports)
	}
	if !csvTotal.Equal(summaryTotal) {
		t.Errorf("CSV total %s != summary total %s", csvTotal, summaryTotal)
	}

	// A quote prices like the stored frames.
	var quote struct {
		Total decimal.Decimal `json:"total"`
	}
	body := map[string]any{"points": []map[string]any{{"service": "instance", "qty": "2", "unit": "hour", "desc": map[string]string{"size": "medium"}}}}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/quote", body, &quote); err != nil {
		t.Fatal(err)
	}
	if !quote.Total.Equal(decimal.RequireFromString("0.6")) {
		t.Errorf("quote of 2 medium hours = %s, want 0.6", quote.Total)
	}
}
