package client_test

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
)

// costRoutes calls every cost control route of the SDK: budgets of a
// user, schedules of a machine and of its stack, webhooks and their
// delivery log.
func costRoutes(t *testing.T, c *client.Client, userID, stackID, machineID string) {
	t.Helper()
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	scope := "user:" + userID
	b, err := c.PutBudget(ctx, scope, client.BudgetRequest{Amount: decimal.RequireFromString("25.00"), WarnAt: []decimal.Decimal{decimal.RequireFromString("0.8")}, Action: "stop"})
	must("put budget", err)
	if b.State != client.BudgetOK || b.Period != "month" {
		t.Errorf("budget = %+v", b)
	}
	_, err = c.Budget(ctx, scope)
	must("budget", err)
	_, err = c.Budgets(ctx)
	must("budgets", err)
	must("delete budget", c.DeleteBudget(ctx, scope))

	sch, err := c.PutMachineSchedule(ctx, machineID, client.ScheduleRequest{Autostart: "0 8 * * 1-5", Autostop: "0 19 * * 1-5", Timezone: "Europe/Berlin"})
	must("put machine schedule", err)
	if sch.NextAutostart == nil || sch.NextAutostop == nil {
		t.Errorf("schedule = %+v, want its next firings", sch)
	}
	_, err = c.MachineSchedule(ctx, machineID)
	must("machine schedule", err)
	m, err := c.Machine(ctx, machineID)
	must("machine", err)
	if m.NextAutostop == nil || !m.NextAutostop.Equal(*sch.NextAutostop) {
		t.Errorf("machine next_autostop = %v, want %v", m.NextAutostop, sch.NextAutostop)
	}
	must("delete machine schedule", c.DeleteMachineSchedule(ctx, machineID))
	_, err = c.PutStackSchedule(ctx, stackID, client.ScheduleRequest{Autostop: "30 18 * * *"})
	must("put stack schedule", err)
	_, err = c.StackSchedule(ctx, stackID)
	must("stack schedule", err)
	must("delete stack schedule", c.DeleteStackSchedule(ctx, stackID))

	hook, err := c.CreateWebhook(ctx, client.WebhookRequest{URL: "http://127.0.0.1:9/hook", Events: []string{client.EventJobFailed}, Secret: "s3cret"})
	must("create webhook", err)
	_, err = c.Webhooks(ctx)
	must("webhooks", err)
	_, err = c.Webhook(ctx, hook.ID)
	must("webhook", err)
	_, err = c.Deliveries(ctx, hook.ID)
	must("deliveries", err)
	must("delete webhook", c.DeleteWebhook(ctx, hook.ID))
}
