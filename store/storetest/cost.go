package storetest

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

var budgetCases = []testCase{
	{"PutGetListProgress", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		b := &store.Budget{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("25.00"), Period: store.BudgetMonth,
			WarnAt: []decimal.Decimal{dec("0.5"), dec("0.8")}, Action: store.BudgetStop}
		ok(t, s.PutBudget(ctx, b))
		got, err := s.GetBudget(ctx, "user:usr-1")
		ok(t, err)
		eq(t, "amount", got.Amount.String(), "25")
		eq(t, "period", got.Period, store.BudgetMonth)
		eq(t, "warn_at", len(got.WarnAt), 2)
		eq(t, "warn_at[1]", got.WarnAt[1].String(), "0.8")
		eq(t, "action", got.Action, store.BudgetStop)
		if got.CreatedAt.IsZero() {
			t.Error("created_at is zero")
		}

		ps := t0.Add(time.Hour)
		ok(t, s.SetBudgetProgress(ctx, "user:usr-1", ps, []string{"0.5"}))
		// A new amount keeps the checker's progress.
		ok(t, s.PutBudget(ctx, &store.Budget{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("30"), Period: store.BudgetMonth, Action: store.BudgetNotify}))
		got, err = s.GetBudget(ctx, "user:usr-1")
		ok(t, err)
		eq(t, "amount after put", got.Amount.String(), "30")
		eq(t, "action after put", got.Action, store.BudgetNotify)
		eq(t, "warn_at after put", len(got.WarnAt), 0)
		sameTime(t, "period_start", got.PeriodStart, ps)
		if len(got.Notified) != 1 || got.Notified[0] != "0.5" {
			t.Errorf("notified = %v, want [0.5]", got.Notified)
		}

		ok(t, s.PutBudget(ctx, &store.Budget{Scope: "stack:stk-1", OwnerID: "usr-2", Amount: dec("5"), Period: store.BudgetDay, Action: store.BudgetStop}))
		all, err := s.ListBudgets(ctx, "")
		ok(t, err)
		eq(t, "budgets", len(all), 2)
		eq(t, "first by scope", all[0].Scope, "stack:stk-1")
		mine, err := s.ListBudgets(ctx, "usr-1")
		ok(t, err)
		eq(t, "budgets of usr-1", len(mine), 1)

		ok(t, s.DeleteBudget(ctx, "stack:stk-1"))
		_, err = s.GetBudget(ctx, "stack:stk-1")
		is(t, err, store.ErrNotFound, "deleted budget")
		is(t, s.DeleteBudget(ctx, "stack:stk-1"), store.ErrNotFound, "delete twice")
		is(t, s.SetBudgetProgress(ctx, "user:nobody", t0, nil), store.ErrNotFound, "progress of a missing budget")
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for _, b := range []*store.Budget{
			nil,
			{Scope: "usr-1", OwnerID: "usr-1", Amount: dec("1"), Period: "month", Action: "stop"},
			{Scope: "user:", OwnerID: "usr-1", Amount: dec("1"), Period: "month", Action: "stop"},
			{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("0"), Period: "month", Action: "stop"},
			{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("1"), Period: "year", Action: "stop"},
			{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("1"), Period: "month", Action: "explode"},
			{Scope: "user:usr-1", OwnerID: "usr-1", Amount: dec("1"), Period: "month", Action: "stop", WarnAt: []decimal.Decimal{dec("1.5")}},
			{Scope: "user:usr-1", Amount: dec("1"), Period: "month", Action: "stop"},
		} {
			is(t, s.PutBudget(ctx, b), store.ErrInvalid, "bad budget")
		}
	}},
}

var scheduleCases = []testCase{
	{"PutGetCheckedDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		sc := &store.Schedule{Target: "machine/m-1", OwnerID: "usr-1", Autostart: "0 8 * * 1-5", Autostop: "0 19 * * 1-5", Timezone: "Europe/Berlin", Checked: t0}
		ok(t, s.PutSchedule(ctx, sc))
		got, err := s.GetSchedule(ctx, "machine/m-1")
		ok(t, err)
		eq(t, "autostart", got.Autostart, "0 8 * * 1-5")
		eq(t, "autostop", got.Autostop, "0 19 * * 1-5")
		eq(t, "timezone", got.Timezone, "Europe/Berlin")
		sameTime(t, "checked", got.Checked, t0)

		ok(t, s.SetScheduleChecked(ctx, "machine/m-1", t0.Add(time.Minute)))
		ok(t, s.SetScheduleChecked(ctx, "machine/m-1", t0)) // never back
		got, err = s.GetSchedule(ctx, "machine/m-1")
		ok(t, err)
		sameTime(t, "checked after moves", got.Checked, t0.Add(time.Minute))
		is(t, s.SetScheduleChecked(ctx, "machine/m-x", t0), store.ErrNotFound, "checked of a missing schedule")

		ok(t, s.PutSchedule(ctx, &store.Schedule{Target: "stack/stk-1", OwnerID: "usr-1", Autostop: "*/5 * * * *", Timezone: "UTC", Checked: t0}))
		ok(t, s.PutSchedule(ctx, &store.Schedule{Target: "machine/m-1", OwnerID: "usr-1", Autostop: "0 20 * * *", Timezone: "UTC", Checked: t0}))
		all, err := s.ListSchedules(ctx)
		ok(t, err)
		eq(t, "schedules", len(all), 2)
		eq(t, "replaced autostart", all[0].Autostart, "")
		eq(t, "replaced autostop", all[0].Autostop, "0 20 * * *")

		ok(t, s.DeleteSchedule(ctx, "stack/stk-1"))
		_, err = s.GetSchedule(ctx, "stack/stk-1")
		is(t, err, store.ErrNotFound, "deleted schedule")
		is(t, s.PutSchedule(ctx, &store.Schedule{Target: "disk/d-1", OwnerID: "usr-1", Autostop: "* * * * *"}), store.ErrInvalid, "bad target")
		is(t, s.PutSchedule(ctx, &store.Schedule{Target: "machine/m-2", OwnerID: "usr-1"}), store.ErrInvalid, "no cron")
	}},
}

var webhookCases = []testCase{
	{"CreateListSealedDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		w := &store.Webhook{OwnerID: "usr-1", URL: "http://127.0.0.1:9/hook", Events: []string{"budget.warned", "job.failed"}, Secret: stack.Secret("s3cr3t-value")}
		ok(t, s.CreateWebhook(ctx, w))
		hasPrefix(t, "webhook", w.ID, "wh-")
		got, err := s.GetWebhook(ctx, w.ID)
		ok(t, err)
		eq(t, "url", got.URL, w.URL)
		eq(t, "events", len(got.Events), 2)
		eq(t, "secret", got.Secret.Reveal(), "s3cr3t-value")
		ok(t, s.CreateWebhook(ctx, &store.Webhook{OwnerID: "usr-2", URL: "https://example.com/x", Events: []string{"job.succeeded"}, Secret: "k"}))
		all, err := s.ListWebhooks(ctx, "")
		ok(t, err)
		eq(t, "webhooks", len(all), 2)
		mine, err := s.ListWebhooks(ctx, "usr-1")
		ok(t, err)
		eq(t, "webhooks of usr-1", len(mine), 1)
		for _, bad := range []*store.Webhook{
			{OwnerID: "usr-1", URL: "ftp://x/y", Events: []string{"a"}, Secret: "k"},
			{OwnerID: "usr-1", URL: "http://x/y", Secret: "k"},
			{OwnerID: "usr-1", URL: "http://x/y", Events: []string{"a"}},
		} {
			is(t, s.CreateWebhook(ctx, bad), store.ErrInvalid, "bad webhook")
		}

		d := &store.Delivery{WebhookID: w.ID, Event: "budget.warned", Body: []byte(`{"event":"budget.warned"}`), Status: store.DeliveryPending, NextAt: t0}
		ok(t, s.CreateDelivery(ctx, d))
		hasPrefix(t, "delivery", d.ID, "dlv-")
		is(t, s.CreateDelivery(ctx, &store.Delivery{WebhookID: "wh-missing", Event: "x", Status: store.DeliveryPending}), store.ErrNotFound, "delivery of a missing webhook")
		due, err := s.DueDeliveries(ctx, t0, 10)
		ok(t, err)
		eq(t, "due", len(due), 1)
		due, err = s.DueDeliveries(ctx, t0.Add(-time.Second), 10)
		ok(t, err)
		eq(t, "due before next", len(due), 0)

		d.Attempts = append(d.Attempts, store.Attempt{At: t0, StatusCode: 500})
		d.NextAt = t0.Add(time.Minute)
		ok(t, s.UpdateDelivery(ctx, d, 0))
		is(t, s.UpdateDelivery(ctx, d, 0), store.ErrConflict, "a stale update")
		d.Attempts = append(d.Attempts, store.Attempt{At: t0.Add(time.Minute), StatusCode: 200})
		d.Status, d.NextAt = store.DeliveryDelivered, time.Time{}
		ok(t, s.UpdateDelivery(ctx, d, 1))
		ds, err := s.ListDeliveries(ctx, w.ID, 0)
		ok(t, err)
		eq(t, "deliveries", len(ds), 1)
		eq(t, "status", ds[0].Status, store.DeliveryDelivered)
		eq(t, "attempts", len(ds[0].Attempts), 2)
		eq(t, "first attempt status", ds[0].Attempts[0].StatusCode, 500)
		sameTime(t, "second attempt at", ds[0].Attempts[1].At, t0.Add(time.Minute))
		eq(t, "body", string(ds[0].Body), `{"event":"budget.warned"}`)
		due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
		ok(t, err)
		eq(t, "due once delivered", len(due), 0)

		ok(t, s.DeleteWebhook(ctx, w.ID))
		_, err = s.GetWebhook(ctx, w.ID)
		is(t, err, store.ErrNotFound, "deleted webhook")
		ds, err = s.ListDeliveries(ctx, w.ID, 0)
		ok(t, err)
		eq(t, "deliveries of a deleted webhook", len(ds), 0)
	}},
}

var ruleValidityCases = []testCase{
	{"PutListDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutRuleValidity(ctx, &store.RuleValidity{RuleID: "map-1", Start: t0}))
		ok(t, s.PutRuleValidity(ctx, &store.RuleValidity{RuleID: "thr-1", Start: t0, End: t0.Add(time.Hour)}))
		ok(t, s.PutRuleValidity(ctx, &store.RuleValidity{RuleID: "map-1", Start: t0, End: t0.Add(2 * time.Hour)}))
		vs, err := s.ListRuleValidities(ctx)
		ok(t, err)
		eq(t, "validities", len(vs), 2)
		eq(t, "first", vs[0].RuleID, "map-1")
		sameTime(t, "end", vs[0].End, t0.Add(2*time.Hour))
		if !vs[0].Covers(t0, t0.Add(time.Hour)) || vs[0].Covers(t0.Add(-time.Hour), t0) || vs[0].Covers(t0.Add(time.Hour), t0.Add(3*time.Hour)) {
			t.Errorf("covers of %+v wrong", vs[0])
		}
		is(t, s.PutRuleValidity(ctx, &store.RuleValidity{RuleID: "map-2", Start: t0, End: t0}), store.ErrInvalid, "empty validity")
		ok(t, s.PutRuleValidity(ctx, &store.RuleValidity{RuleID: "thr-1"})) // open both sides: gone
		ok(t, s.DeleteRuleValidity(ctx, "map-1"))
		ok(t, s.DeleteRuleValidity(ctx, "map-1"))
		vs, err = s.ListRuleValidities(ctx)
		ok(t, err)
		eq(t, "validities after delete", len(vs), 0)
	}},
}

var rewriteCases = []testCase{
	{"ReplaceRatedPeriod", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		b := t0.UTC().Truncate(time.Hour)
		pt := func(price string) store.RatedPoint {
			return store.RatedPoint{Service: "instance", Unit: "hour", Qty: dec("1"), Price: dec(price), Groupby: map[string]string{"machine_id": "m-1"}}
		}
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b, End: b.Add(time.Hour), Points: []store.RatedPoint{pt("1"), pt("2")}}))
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.Add(time.Hour), End: b.Add(2 * time.Hour), Points: []store.RatedPoint{pt("4")}}))
		ok(t, s.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b, End: b.Add(time.Hour), Points: []store.RatedPoint{pt("0.5")}}))
		pts, err := s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1"})
		ok(t, err)
		eq(t, "points", len(pts), 2)
		eq(t, "replaced price", pts[0].Price.String(), "0.5")
		eq(t, "other period's price", pts[1].Price.String(), "4")
		st, err := s.GetScopeState(ctx, "usr-1")
		ok(t, err)
		sameTime(t, "state", st.LastProcessed, b.Add(2*time.Hour))
		is(t, s.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.Add(2 * time.Hour), End: b.Add(3 * time.Hour)}), store.ErrNotFound, "a period not rated yet")
		is(t, s.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-2", Begin: b, End: b.Add(time.Hour)}), store.ErrNotFound, "a scope never rated")
		is(t, s.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.Add(30 * time.Minute), End: b.Add(90 * time.Minute), Points: []store.RatedPoint{pt("9")}}),
			store.ErrNotFound, "a window that is no rated period")
		// A period rated without points is replaced like any.
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.Add(2 * time.Hour), End: b.Add(3 * time.Hour)}))
		ok(t, s.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.Add(2 * time.Hour), End: b.Add(3 * time.Hour), Points: []store.RatedPoint{pt("7")}}))
		pts, err = s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1"})
		ok(t, err)
		if len(pts) != 3 || pts[0].Price.String() != "0.5" || pts[1].Price.String() != "4" || pts[2].Price.String() != "7" {
			t.Errorf("points after the replacements = %+v", pts)
		}
	}},
}
