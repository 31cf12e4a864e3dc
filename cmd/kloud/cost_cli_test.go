package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestCostCLI: kloud budget set|show|list, kloud webhook
// add|list|deliveries, kloud machine schedule and kloud rating reprocess
// --dry-run against a whole server, in JSON and as tables.
func TestCostCLI(t *testing.T) {
	h := kloudtest.New(t)
	s := session{t, h}
	ctx := context.Background()

	var ann client.User
	s.json(&ann, "user", "create", "ann")
	scope := "user:" + ann.ID
	var b client.Budget
	s.json(&b, "budget", "set", scope, "25.00", "--warn-at", "0.5,0.8", "--action", "stop")
	if !b.Amount.Equal(b.Amount.Round(2)) || b.Amount.String() != "25" || len(b.WarnAt) != 2 || b.Action != "stop" || b.State != "ok" {
		t.Errorf("budget set = %+v", b)
	}
	s.both(&b, []string{"budget", "show", scope}, "SPENT", "FORECAST", scope, "month", "ok")
	var bs []client.Budget
	s.both(&bs, []string{"budget", "list"}, "STATE", scope)
	if len(bs) != 1 {
		t.Errorf("budget list = %+v", bs)
	}

	var hook client.Webhook
	s.json(&hook, "webhook", "add", "http://127.0.0.1:9/hook", "--events", "job.failed,budget.warned", "--secret", "s3cret")
	if hook.ID == "" || len(hook.Events) != 2 {
		t.Errorf("webhook add = %+v", hook)
	}
	var hooks []client.Webhook
	s.both(&hooks, []string{"webhook", "list"}, "EVENTS", "budget.warned,job.failed")
	var ds []client.Delivery
	s.both(&ds, []string{"webhook", "deliveries", hook.ID}, "EVENT", "ATTEMPTS")

	// A stack (not applied) to schedule.
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "one", Provider: "sandbox", Content: oneMachine})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	var sch client.Schedule
	s.json(&sch, "machine", "schedule", st.ID, "--stack", "--autostop", "0 19 * * 1-5", "--timezone", "Europe/Berlin")
	if sch.Target != "stack/"+st.ID || sch.NextAutostop == nil || sch.NextAutostart != nil {
		t.Errorf("machine schedule = %+v", sch)
	}
	s.both(&sch, []string{"machine", "schedule", st.ID, "--stack"}, "NEXT STOP", "0 19 * * 1-5", "Europe/Berlin")
	if out := s.run("machine", "schedule", st.ID, "--stack", "--delete"); out != "" {
		t.Errorf("schedule --delete printed %q", out)
	}

	begin, end := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339)
	var rp client.Reprocessed
	s.json(&rp, "rating", "reprocess", "--begin", begin, "--end", end, "--dry-run")
	if !rp.DryRun {
		t.Errorf("reprocess --dry-run = %+v", rp)
	}
	s.table([]string{"rating", "reprocess", "--begin", begin, "--end", end, "--dry-run"}, "DELTA", "periods read", "would move")
}
