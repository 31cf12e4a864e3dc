package kloud_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// flatPrice prices every running hour of an instance at cost.
func flatPrice(t *testing.T, admin *client.Client, cost string) {
	t.Helper()
	if _, err := admin.CreateHashmapMapping(context.Background(), client.MappingRequest{ServiceID: instanceService(t, admin), Type: client.CostFlat, Cost: dec(cost)}); err != nil {
		t.Fatal(err)
	}
}

// newMember creates a member and returns them with a client acting as them.
func newMember(t *testing.T, admin *client.Client, name string) (*client.User, *client.Client) {
	t.Helper()
	u, err := admin.CreateUser(context.Background(), client.CreateUserRequest{Name: name, Role: "member"})
	if err != nil {
		t.Fatal(err)
	}
	return u, admin.WithToken(u.Token)
}

// instanceService creates the service "instance" and returns its id.
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
	if apiStatus(err) != http.StatusConflict {
		t.Errorf("change the cost of a started rule: %v, want 409", err)
	}
	later := start.Add(time.Minute)
	_, err = admin.UpdateHashmapMapping(ctx, past.ID, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.5"), Start: &later, End: &end})
	if apiStatus(err) != http.StatusConflict {
		t.Errorf("move the start of a started rule: %v, want 409", err)
	}
	newEnd := end.Add(time.Hour)
	// Its start may be left out: a started rule keeps it.
	got, err := admin.UpdateHashmapMapping(ctx, past.ID, client.MappingRequest{ServiceID: svc, GroupID: g3.ID, Type: client.CostFlat, Cost: dec("0.5"), End: &newEnd})
	if err != nil {
		t.Fatalf("change the end of a started rule: %v", err)
	}
	if got.End == nil || !got.End.Equal(newEnd) || got.Start == nil || !got.Start.Equal(start) {
		t.Errorf("validity after update = %v to %v, want %v to %v", got.Start, got.End, start, newEnd)
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
		if _, err := admin.Reprocess(ctx, bad); apiStatus(err) < 400 || apiStatus(err) >= 500 {
			t.Errorf("reprocess %+v: %v, want a 4xx", bad, err)
		}
	}
}

// TestBudgetSpentIsSummaryPlusLive: at every moment sampled, a budget's
// spent is the rating summary's total of its period through rated_through
// plus the live part, to the cent (exactly, in fact), whether rating is
// behind or has just run; and it is what the machines' running time costs.
func TestBudgetSpentIsSummaryPlusLive(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := costHarness(t, clock)
	ctx := context.Background()
	admin := h.Admin
	ann, member := newMember(t, admin, "ann")
	now := clock.Now().UTC()
	// Both machines started at least two hours ago, inside this month.
	since := now.Add(-2 * time.Hour)
	if ms := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC); since.Before(ms) {
		since = ms
	}
	seedRunning(t, h, "m-1", ann.ID, "stk-1", false, since)
	seedRunning(t, h, "m-2", ann.ID, "stk-2", true, since)
	flatPrice(t, admin, "0.6")
	if _, err := member.PutBudget(ctx, "user:"+ann.ID, client.BudgetRequest{Amount: dec("100")}); apiStatus(err) != http.StatusForbidden {
		t.Errorf("a member sets a budget: %v, want 403", err)
	}
	set, err := admin.PutBudget(ctx, "user:"+ann.ID, client.BudgetRequest{Amount: dec("100"), WarnAt: []decimal.Decimal{dec("0.8")}, Action: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	if set.Period != "month" || set.State != client.BudgetOK || !set.Amount.Equal(dec("100")) {
		t.Errorf("budget = %+v", set)
	}
	if _, err := admin.PutBudget(ctx, "stack:stk-1", client.BudgetRequest{Amount: dec("50")}); apiStatus(err) != http.StatusNotFound {
		t.Errorf("budget of a stack that does not exist: %v, want 404", err)
	}
	for _, bad := range []client.BudgetRequest{{Amount: dec("-1")}, {Amount: dec("1"), Period: "year"}, {Amount: dec("1"), Action: "explode"}, {Amount: dec("1"), WarnAt: []decimal.Decimal{dec("2")}}} {
		if _, err := admin.PutBudget(ctx, "user:"+ann.ID, bad); apiStatus(err) != http.StatusUnprocessableEntity {
			t.Errorf("budget %+v: %v, want 422", bad, err)
		}
	}

	for i, step := range []struct {
		advance time.Duration
		process bool
	}{{0, false}, {0, true}, {17 * time.Minute, false}, {40 * time.Minute, true}, {3 * time.Minute, false}} {
		clock.Advance(step.advance)
		if step.process {
			if _, err := admin.ProcessRating(ctx); err != nil {
				t.Fatal(err)
			}
		}
		hours := func() decimal.Decimal {
			return decimal.NewFromInt(int64(clock.Now().Sub(since))).Div(decimal.NewFromInt(int64(time.Hour)))
		}
		before := hours()
		b, err := member.Budget(ctx, "user:"+ann.ID)
		if err != nil {
			t.Fatal(err)
		}
		after := hours()
		rated := summaryTotal(t, admin, client.SummaryQuery{Scope: ann.ID, Begin: b.PeriodStart, End: b.RatedThrough})
		if !b.Spent.Equal(rated.Add(b.Live)) || !b.Rated.Equal(rated) {
			t.Errorf("sample %d: spent %s, want summary %s + live %s", i, b.Spent, rated, b.Live)
		}
		if b.Spent.Round(2).String() != rated.Add(b.Live).Round(2).String() {
			t.Errorf("sample %d: spent %s is not summary + live to the cent", i, b.Spent)
		}
		// 0.6 an hour for each of the two machines since they started,
		// as long as they had run when the server answered (each point's
		// qty is rounded to 9 places).
		lo, hi := before.Mul(dec("1.2")).Sub(dec("0.000001")), after.Mul(dec("1.2")).Add(dec("0.000001"))
		if b.Spent.LessThan(lo) || b.Spent.GreaterThan(hi) {
			t.Errorf("sample %d: spent %s, want between %s and %s (two machines at 0.6 an hour)", i, b.Spent, lo, hi)
		}
		if !b.Hourly.Equal(dec("1.2")) {
			t.Errorf("sample %d: hourly %s, want 1.2", i, b.Hourly)
		}
		if b.Forecast.LessThan(b.Spent) {
			t.Errorf("sample %d: forecast %s below spent %s", i, b.Forecast, b.Spent)
		}
	}
	list, err := member.Budgets(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("member's budgets = %+v, %v; want theirs", list, err)
	}
	bob := h.Member(t, "bob")
	if _, err := bob.Budget(ctx, "user:"+ann.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another member reads ann's budget: %v, want 404", err)
	}
	if list, err := bob.Budgets(ctx); err != nil || len(list) != 0 {
		t.Errorf("bob's budgets = %+v, %v; want none", list, err)
	}
}

// TestPlanShowsBudgetFit: a plan says whether its estimate, run from now
// to the end of the owner's budget period, fits what is left of it.
func TestPlanShowsBudgetFit(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	flatPrice(t, admin, "0.1")
	ann, member := newMember(t, admin, "ann")
	credID, tplID := setup(t, member)
	plan, err := member.PlanTemplate(ctx, tplID, client.PlanRequest{CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Budget != nil {
		t.Errorf("plan without a budget = %+v, want no budget", plan.Budget)
	}
	for _, tt := range []struct {
		amount string
		fits   bool
	}{{"100000", true}, {"0.01", false}} {
		if _, err := admin.PutBudget(ctx, "user:"+ann.ID, client.BudgetRequest{Amount: dec(tt.amount), Period: "month"}); err != nil {
			t.Fatal(err)
		}
		plan, err := member.PlanTemplate(ctx, tplID, client.PlanRequest{CredentialID: credID})
		if err != nil {
			t.Fatal(err)
		}
		b := plan.Budget
		if b == nil || b.Fits != tt.fits || b.Scope != "user:"+ann.ID || !b.Remaining.Equal(dec(tt.amount)) || !b.Estimate.IsPositive() {
			t.Errorf("budget %s: plan budget = %+v, want fits=%v with all of it remaining", tt.amount, b, tt.fits)
		}
	}
}

// TestWebhookAPI: a member's webhook is theirs (others get 404), bad
// input names its field, and the secret is never answered nor stored in
// clear anywhere under the data dir.
func TestWebhookAPI(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	_, ann := newMember(t, admin, "ann")
	_, bob := newMember(t, admin, "bob")
	const secret = "do-not-leak-this-webhook-secret"
	hook, err := ann.CreateWebhook(ctx, client.WebhookRequest{URL: "https://hooks.example.com/kloud", Events: []string{client.EventMachineStopped, client.EventJobFailed}, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	if err := ann.Do(ctx, http.MethodGet, "/api/v1/webhooks/"+hook.ID, nil, &raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(`"secret"`)) {
		t.Errorf("GET webhook answers its secret: %s", raw)
	}
	if _, err := bob.Webhook(ctx, hook.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another member reads the webhook: %v, want 404", err)
	}
	if _, err := bob.Deliveries(ctx, hook.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another member reads its deliveries: %v, want 404", err)
	}
	if err := bob.DeleteWebhook(ctx, hook.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("another member deletes it: %v, want 404", err)
	}
	if hs, err := admin.Webhooks(ctx); err != nil || len(hs) != 1 {
		t.Errorf("admin's list = %+v, %v; want ann's webhook", hs, err)
	}
	if hs, err := bob.Webhooks(ctx); err != nil || len(hs) != 0 {
		t.Errorf("bob's list = %+v, %v; want none", hs, err)
	}
	for _, tt := range []struct {
		req   client.WebhookRequest
		field string
	}{
		{client.WebhookRequest{URL: "ftp://example.com/x", Events: []string{client.EventJobFailed}, Secret: "s"}, "url"},
		{client.WebhookRequest{URL: "http://user:pw@example.com/x", Events: []string{client.EventJobFailed}, Secret: "s"}, "url"},
		{client.WebhookRequest{URL: "http://example.com/" + strings.Repeat("x", 3000), Events: []string{client.EventJobFailed}, Secret: "s"}, "url"},
		{client.WebhookRequest{URL: "http://example.com/x", Secret: "s"}, "events"},
		{client.WebhookRequest{URL: "http://example.com/x", Events: []string{"job.exploded"}, Secret: "s"}, "events[0]"},
		{client.WebhookRequest{URL: "http://example.com/x", Events: []string{client.EventJobFailed}}, "secret"},
	} {
		_, err := ann.CreateWebhook(ctx, tt.req)
		var ce *client.Error
		if !asClientError(err, &ce) || ce.Status != http.StatusUnprocessableEntity || ce.Field != tt.field || len(ce.Message) > 200 {
			t.Errorf("webhook %+v: %v, want 422 naming %s", tt.req.Events, err, tt.field)
		}
	}
	err = filepath.WalkDir(h.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the webhook secret in clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ann.DeleteWebhook(ctx, hook.ID); err != nil {
		t.Fatal(err)
	}
}
