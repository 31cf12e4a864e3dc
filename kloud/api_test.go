package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

const twoMachines = `
variable "web_count" {
  type    = number
  default = 1
}

resource "sandbox_machine" "web" {
  count     = var.web_count
  name      = "web-${count.index}"
  size      = "small"
  user_data = "echo hello > index.html"
}

resource "sandbox_machine" "db" {
  name      = "db"
  size      = "medium"
  always_on = true
}
`

// setup adds a sandbox credential and the two-machine template for c.
func setup(t *testing.T, c *client.Client) (credID, tplID string) {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("create credential: %v", err)
	}
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "web+db", Provider: "sandbox", Content: twoMachines, Format: "hcl"})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	return cred.ID, tpl.ID
}

func apiStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestUnauthorized(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	for _, token := range []string{"", "not-a-token"} {
		_, err := h.Admin.WithToken(token).Machines(ctx)
		if apiStatus(err) != http.StatusUnauthorized {
			t.Errorf("token %q: err = %v, want 401", token, err)
		}
	}
	if _, err := h.Admin.Health(ctx); err != nil {
		t.Errorf("healthz needs no token: %v", err)
	}
}

func TestLocalExecRefusedWithLine(t *testing.T) {
	h := kloudtest.New(t)
	content := "resource \"sandbox_machine\" \"web\" {\n  name = \"web\"\n\n  provisioner \"local-exec\" {\n    command = \"rm -rf /\"\n  }\n}\n"
	_, err := h.Admin.CreateTemplate(context.Background(), client.CreateTemplateRequest{Title: "bad", Provider: "sandbox", Content: content, Format: "hcl"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
		t.Fatalf("err = %v, want 422", err)
	}
	if len(e.Diagnostics) == 0 || e.Diagnostics[0].Line != 4 || !strings.Contains(e.Diagnostics[0].Message, "local-exec") {
		t.Fatalf("diagnostics = %+v, want local-exec on line 4", e.Diagnostics)
	}
}

func TestStackLifecycle(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	credID, tplID := setup(t, admin)

	plan, err := admin.PlanTemplate(ctx, tplID, client.PlanRequest{CredentialID: credID})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(plan.Machines) != 2 {
		t.Fatalf("plan machines = %+v, want 2", plan.Machines)
	}

	st, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "demo", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	if st.Status != "not_initialized" {
		t.Errorf("new stack status = %s", st.Status)
	}
	if err := admin.DeleteCredential(ctx, credID); apiStatus(err) != http.StatusConflict {
		t.Errorf("delete credential in use: %v, want 409", err)
	}
	ref, err := admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	// A second apply while the first is queued or running names it.
	_, err = admin.ApplyStack(ctx, st.ID)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.JobID != ref.JobID {
		t.Errorf("second apply: err = %v (%+v), want 409 naming job %s", err, e, ref.JobID)
	}
	// Follow the job's events as a stream until it ends.
	var events []client.Event
	job, err := admin.FollowJob(ctx, ref.JobID, func(ev client.Event) { events = append(events, ev) })
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	if job.Status != "succeeded" || job.Percentage != 100 {
		t.Fatalf("apply job = %+v", job)
	}
	var output, done bool
	for _, ev := range events {
		output = output || ev.Kind == "output"
		done = done || ev.Kind == "done"
	}
	if !output || !done {
		t.Errorf("events lack terraform output or done: %+v", events)
	}

	st, err = admin.Stack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "initialized" || len(st.Machines) != 2 {
		t.Fatalf("stack after apply = %s with %d machines", st.Status, len(st.Machines))
	}
	var web client.Machine
	for _, m := range st.Machines {
		if m.State.String() != "Running" {
			t.Errorf("machine %s is %s", m.Label, m.State)
		}
		if m.Label == "sandbox_machine.web[0]" {
			web = m
		}
	}
	if web.ID == "" {
		t.Fatalf("no sandbox_machine.web[0] in %+v", st.Machines)
	}

	// Start on a running machine is refused with the state and the allowed methods.
	_, err = admin.StartMachine(ctx, web.ID)
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.State != "Running" || !contains(e.Allowed, "stop") {
		t.Errorf("start running machine: %v (%+v), want 409 Running allowing stop", err, e)
	}

	// A member sees none of the admin's machines and cannot stop them.
	member := h.Member(t, "bob")
	ms, err := member.Machines(ctx)
	if err != nil || len(ms) != 0 {
		t.Errorf("member machines = %v, %v; want none", ms, err)
	}
	if _, err := member.StopMachine(ctx, web.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("member stop: %v, want 404", err)
	}

	ref, err = admin.StopMachine(ctx, web.ID)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	m, err := admin.Machine(ctx, web.ID)
	if err != nil || m.State.String() != "Stopped" {
		t.Fatalf("after stop: %+v, %v", m, err)
	}
	if _, err := admin.StopMachine(ctx, web.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("stop stopped machine: %v, want 409", err)
	}
	ref, err = admin.StartMachine(ctx, web.ID)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	if m, _ := admin.Machine(ctx, web.ID); m.State.String() != "Running" {
		t.Fatalf("after start: %s", m.State)
	}

	ref, err = admin.DestroyStack(ctx, st.ID)
	if err != nil {
		t.Fatalf("destroy: %v", err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	if st.Status != "destroyed" {
		t.Errorf("stack after destroy = %s", st.Status)
	}
	for _, m := range st.Machines {
		if m.State.String() != "Terminated" {
			t.Errorf("machine %s after destroy = %s", m.Label, m.State)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

// TestMalformedRequests drives bad input at every kind of endpoint: each
// gets a 4xx with a message, never a 500.
func TestMalformedRequests(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	big := `{"title":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"user bad json", "POST", "/api/v1/users", `{"name":`, 400},
		{"user wrong type", "POST", "/api/v1/users", `{"name": 5}`, 400},
		{"user unknown field", "POST", "/api/v1/users", `{"name":"a","nope":1}`, 400},
		{"user bad role", "POST", "/api/v1/users", `{"name":"a","role":"god"}`, 422},
		{"user empty name", "POST", "/api/v1/users", `{"name":""}`, 422},
		{"user empty body", "POST", "/api/v1/users", ``, 400},
		{"user array body", "POST", "/api/v1/users", `[]`, 400},
		{"credential unknown provider", "POST", "/api/v1/credentials", `{"provider":"mars","data":{}}`, 422},
		{"credential missing provider", "POST", "/api/v1/credentials", `{"data":{}}`, 422},
		{"credential unknown data field", "POST", "/api/v1/credentials", `{"provider":"sandbox","data":{"zone":"x"}}`, 422},
		{"credential data not object", "POST", "/api/v1/credentials", `{"provider":"sandbox","data":"x"}`, 422},
		{"credential data wrong type", "POST", "/api/v1/credentials", `{"provider":"sandbox","data":{"data_dir":5}}`, 422},
		{"credential trailing data", "POST", "/api/v1/credentials", `{"provider":"sandbox"} {}`, 400},
		{"credential unknown id", "GET", "/api/v1/credentials/cred-nope", ``, 404},
		{"verify unknown id", "POST", "/api/v1/credentials/cred-nope/verify", ``, 404},
		{"bootstrap unknown id", "POST", "/api/v1/credentials/cred-nope/bootstrap", ``, 404},
		{"template bad format", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","content":"x","format":"yaml"}`, 422},
		{"template empty content", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","content":""}`, 422},
		{"template syntax error", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","content":"resource {"}`, 422},
		{"template bad json template", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","format":"json","content":"{\"resource\": ["}`, 422},
		{"template no machines", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","content":"variable \"x\" {}"}`, 422},
		{"template backend block", "POST", "/api/v1/templates", `{"title":"t","provider":"sandbox","content":"terraform {\n backend \"s3\" {}\n}\nresource \"sandbox_machine\" \"a\" { name = \"a\" }"}`, 422},
		{"template oversized body", "POST", "/api/v1/templates", big, 413},
		{"template unknown id", "GET", "/api/v1/templates/tpl-nope", ``, 404},
		{"plan missing credential", "POST", "/api/v1/templates/" + tplID + "/plan", `{}`, 422},
		{"plan unknown credential", "POST", "/api/v1/templates/" + tplID + "/plan", `{"credential_id":"cred-nope"}`, 422},
		{"plan undeclared variable", "POST", "/api/v1/templates/" + tplID + "/plan", `{"credential_id":"` + credID + `","variables":{"nope":"1"}}`, 422},
		{"plan variables wrong type", "POST", "/api/v1/templates/" + tplID + "/plan", `{"credential_id":"` + credID + `","variables":[1]}`, 400},
		{"stack missing template", "POST", "/api/v1/stacks", `{"title":"s","credential_id":"` + credID + `"}`, 422},
		{"stack unknown template", "POST", "/api/v1/stacks", `{"title":"s","template_id":"tpl-nope","credential_id":"` + credID + `"}`, 422},
		{"stack unknown credential", "POST", "/api/v1/stacks", `{"title":"s","template_id":"` + tplID + `","credential_id":"cred-nope"}`, 422},
		{"stack missing title", "POST", "/api/v1/stacks", `{"template_id":"` + tplID + `","credential_id":"` + credID + `"}`, 422},
		{"stack undeclared variable", "POST", "/api/v1/stacks", `{"title":"s","template_id":"` + tplID + `","credential_id":"` + credID + `","variables":{"x":"1"}}`, 422},
		{"stack unknown id", "GET", "/api/v1/stacks/stk-nope", ``, 404},
		{"apply unknown stack", "POST", "/api/v1/stacks/stk-nope/apply", ``, 404},
		{"destroy unknown stack", "POST", "/api/v1/stacks/stk-nope/destroy", ``, 404},
		{"job unknown id", "GET", "/api/v1/jobs/job-nope", ``, 404},
		{"job events unknown id", "GET", "/api/v1/jobs/job-nope/events?follow=1", ``, 404},
		{"machine unknown id", "GET", "/api/v1/machines/m-nope", ``, 404},
		{"start unknown machine", "POST", "/api/v1/machines/m-nope/start", ``, 404},
		{"agent without token", "POST", "/api/v1/agent/heartbeat", `{}`, 401},
		{"agent with user token", "POST", "/api/v1/agent/register", `{}`, 401},
		{"unknown endpoint", "GET", "/api/v1/nothing", ``, 404},
		{"wrong method", "DELETE", "/api/v1/stacks", ``, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, tt.method, h.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+h.AdminToken)
			if strings.HasPrefix(tt.path, "/api/v1/agent") && tt.name == "agent without token" {
				req.Header.Del("Authorization")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d (%q), want %d", resp.StatusCode, body.Error, tt.status)
			}
			if resp.StatusCode >= 500 {
				t.Errorf("server error: %q", body.Error)
			}
			if body.Error == "" {
				t.Errorf("no error message")
			}
		})
	}
}

func TestBootstrapCredential(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	credID, _ := setup(t, h.Admin)
	ref, err := h.Admin.BootstrapCredential(ctx, credID, false)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	c, err := h.Admin.Credential(ctx, credID)
	if err != nil || !c.Bootstrapped {
		t.Fatalf("credential after bootstrap = %+v, %v", c, err)
	}
	// A bootstrapped credential is not deleted before its bootstrap is.
	if err := h.Admin.DeleteCredential(ctx, credID); apiStatus(err) != http.StatusConflict {
		t.Errorf("delete bootstrapped credential: %v, want 409", err)
	}
	ref, err = h.Admin.BootstrapCredential(ctx, credID, true)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	if c, _ := h.Admin.Credential(ctx, credID); c.Bootstrapped {
		t.Error("credential still bootstrapped after destroy")
	}
}
