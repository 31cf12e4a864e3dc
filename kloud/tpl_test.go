package kloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
)

// webTemplate is count web machines, the first of size first, the others
// small.
func webTemplate(count int, first string) string {
	return `
variable "web_count" {
  type    = number
  default = ` + itoa(count) + `
}

resource "sandbox_machine" "web" {
  count = var.web_count
  name  = "web-${count.index}"
  size  = count.index == 0 ? "` + first + `" : "small"
}
`
}

func itoa(n int) string { return decimal.NewFromInt(int64(n)).String() }

// priceSizes prices small machines at 0.12 an hour and medium ones at 0.30
// (hashmap field mappings of service instance), and returns the service's
// id.
func priceSizes(t *testing.T, admin *client.Client) string {
	t.Helper()
	ctx := context.Background()
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
	return svc.ID
}

// sandboxTemplate adds a sandbox credential and a template of content.
func sandboxTemplate(t *testing.T, c *client.Client, title, content string) (*client.Credential, *client.Template) {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: title, Provider: "sandbox", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return cred, tpl
}

// newSandboxStack adds a sandbox credential, a template of content and a
// stack of it, not applied.
func newSandboxStack(t *testing.T, c *client.Client, title, content string) (*client.Credential, *client.Template, *client.Stack) {
	t.Helper()
	cred, tpl := sandboxTemplate(t, c, title, content)
	st, err := c.CreateStack(context.Background(), client.CreateStackRequest{Title: title, TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	return cred, tpl, st
}

// planOf runs a stack's plan job and returns its plan.
func planOf(t *testing.T, c *client.Client, stackID string) *client.StackPlan {
	t.Helper()
	ref, err := c.PlanStack(context.Background(), stackID)
	if err != nil {
		t.Fatalf("plan stack: %v", err)
	}
	kloudtest.WaitJob(t, c, ref.JobID)
	j, err := c.Job(context.Background(), ref.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Plan == nil || j.Plan.ID != ref.JobID {
		t.Fatalf("plan job %s answers plan %+v", ref.JobID, j.Plan)
	}
	return j.Plan
}

func machinesByLabel(st *client.Stack) map[string]client.Machine {
	out := map[string]client.Machine{}
	for _, m := range st.Machines {
		if m.State != machinestate.Terminated {
			out[m.Label] = m
		}
	}
	return out
}

func sizeOf(t *testing.T, m client.Machine) string {
	t.Helper()
	var meta struct {
		Size string `json:"size"`
	}
	if err := json.Unmarshal(m.Metadata, &meta); err != nil {
		t.Fatalf("machine %s metadata: %v", m.ID, err)
	}
	return meta.Size
}

// TestStackUpdateEndToEnd is the developer's loop on the sandbox: a stack
// applied at version 1 with 3 machines; version 2 scales to 5 and makes one
// machine medium; the stack's plan shows 2 to create, 1 to update and the
// cost before and after; applying exactly that plan leaves 5 machines, the
// untouched ones with their ids and history; the bill of the period of the
// change counts each machine once; a second plan made before is stale (409);
// a machine removed behind Kloud's back shows as drift; the applied stack
// cannot be deleted, the destroyed one can.
func TestStackUpdateEndToEnd(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.RatingInterval = time.Hour // the test triggers processing itself
		c.AgentTimeout = 24 * time.Hour
	})
	ctx := context.Background()
	admin := h.Admin
	priceSizes(t, admin)

	cred, tpl, st := newSandboxStack(t, admin, "web", webTemplate(3, "small"))
	if st.TemplateVersion != 1 {
		t.Fatalf("new stack pins version %d, want 1", st.TemplateVersion)
	}
	ref, err := admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	v1 := machinesByLabel(st)
	if len(v1) != 3 {
		t.Fatalf("version 1 built %d machines, want 3", len(v1))
	}
	history := map[string]int{}
	for _, m := range v1 {
		hs, err := h.Store.MachineHistory(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		history[m.ID] = len(hs)
	}

	// Version 2: five machines, the first medium.
	clock.Advance(30 * time.Minute)
	v2, err := admin.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: webTemplate(5, "medium"), Message: "scale to 5"})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Active || len(v2.Variables) != 1 || v2.Variables[0].Name != "web_count" || v2.Variables[0].Default != "5" {
		t.Fatalf("version 2 = %+v", v2)
	}
	version := 2
	if st, err = admin.UpdateStack(ctx, st.ID, client.UpdateStackRequest{TemplateVersion: &version}); err != nil {
		t.Fatal(err)
	}
	if st.TemplateVersion != 2 {
		t.Fatalf("stack pins version %d after PATCH, want 2", st.TemplateVersion)
	}

	plan := planOf(t, admin, st.ID)
	stale := planOf(t, admin, st.ID) // made on the same state
	if s := plan.Summary; s.Create != 2 || s.Update+s.Replace != 1 || s.Destroy != 0 {
		t.Fatalf("plan summary = %+v, want 2 to create and 1 to update or replace; resources %+v", s, plan.Resources)
	}
	if plan.CostBefore.Hourly != "0.36" || plan.CostAfter.Hourly != "0.78" {
		t.Errorf("cost before %s, after %s; want 0.36 (3 small) and 0.78 (4 small, 1 medium)", plan.CostBefore.Hourly, plan.CostAfter.Hourly)
	}
	var changed *client.ResourceChange
	for i, r := range plan.Resources {
		if r.Action == "update" || r.Action == "replace" {
			changed = &plan.Resources[i]
		}
	}
	var size *client.AttributeChange
	for i, a := range changed.Changes {
		if a.Name == "size" {
			size = &changed.Changes[i]
		}
	}
	if changed.Address != "sandbox_machine.web[0]" || size == nil || size.Before != "small" || size.After != "medium" {
		t.Errorf("changed resource = %+v, want web[0] size small → medium", changed)
	}
	if len(plan.Machines) != 3 {
		t.Errorf("machines affected = %+v, want web[0], web[3], web[4]", plan.Machines)
	}
	for _, r := range plan.Resources {
		for _, a := range r.Changes {
			if a.Name == "agent_token" || a.Name == "kloud_url" {
				t.Errorf("plan shows Kloud's own attribute %s of %s", a.Name, r.Address)
			}
		}
	}

	// Apply exactly that plan.
	clock.Advance(10 * time.Minute)
	ref, err = admin.ApplyPlan(ctx, st.ID, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	applied := kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	after := machinesByLabel(st)
	if len(after) != 5 {
		t.Fatalf("after the plan: %d machines, want 5", len(after))
	}
	if got := sizeOf(t, after["sandbox_machine.web[0]"]); got != "medium" {
		t.Errorf("web[0] size = %s, want medium", got)
	}
	for label, m := range v1 {
		if after[label].ID != m.ID {
			t.Errorf("%s was %s, is now %s: an update must keep the machine's id", label, m.ID, after[label].ID)
		}
		hs, err := h.Store.MachineHistory(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) < history[m.ID] {
			t.Errorf("%s history shrank from %d to %d records", label, history[m.ID], len(hs))
		}
	}

	// The plan made on the old state is refused, as is applying one twice.
	_, err = admin.ApplyPlan(ctx, st.ID, stale.ID)
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "stale") {
		t.Errorf("apply of a stale plan: %v, want 409 naming it stale", err)
	}
	_, err = admin.ApplyPlan(ctx, st.ID, "job-nope")
	if apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("apply of an unknown plan: %v, want 422", err)
	}

	// Jobs and their timings.
	jobs, err := admin.StackJobs(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 4 || jobs[0].ID != applied.ID || jobs[1].Kind != "plan" {
		t.Fatalf("stack jobs = %d, newest %s; want 4, the plan's apply first", len(jobs), jobs[0].ID)
	}
	for _, phase := range []string{"compose", "init", "apply", "record"} {
		if _, ok := jobs[0].Timings[phase]; !ok {
			t.Errorf("apply job timings %v lack %s", jobs[0].Timings, phase)
		}
	}
	pj, _ := admin.Job(ctx, plan.ID)
	if pj.Timings["plan"] <= 0 {
		t.Errorf("plan job timings = %v, want a plan phase", pj.Timings)
	}
	t.Logf("plan job timings (ms): %v; apply of the plan: %v", pj.Timings, jobs[0].Timings)

	// The bill of the periods spanning the change counts each machine once.
	clock.Advance(3 * time.Hour)
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/process", nil, nil); err != nil {
		t.Fatal(err)
	}
	var bill struct {
		Total   int      `json:"total"`
		Columns []string `json:"columns"`
		Results [][]any  `json:"results"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/summary?groupby=machine_id", nil, &bill); err != nil {
		t.Fatal(err)
	}
	if bill.Total != 5 {
		t.Errorf("bill has %d machines, want 5: %v", bill.Total, bill.Results)
	}

	// Drift: a machine's process and directory removed behind Kloud's back.
	gone := after["sandbox_machine.web[1]"]
	var meta struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
	}
	if err := json.Unmarshal(gone.Metadata, &meta); err != nil || meta.ID == "" {
		t.Fatalf("metadata of %s: %s", gone.ID, gone.Metadata)
	}
	if meta.PID > 0 {
		_ = syscall.Kill(meta.PID, syscall.SIGKILL)
	}
	dir := filepath.Join(h.DataDir, "sandbox", cred.ID, "machines", meta.ID)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("machine directory: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ref, err = admin.CheckDrift(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	if !st.Drifted || st.Drift == nil || len(st.Drift.Resources) != 1 || st.Drift.Resources[0].Address != "sandbox_machine.web[1]" {
		t.Fatalf("after the drift check: drifted %v, drift %+v; want web[1]", st.Drifted, st.Drift)
	}
	list, _ := admin.Stacks(ctx)
	if len(list) != 1 || !list[0].Drifted {
		t.Errorf("stack list does not say the stack drifted: %+v", list)
	}
	// The periodic check (--drift-interval) queues the same job for every
	// initialized stack without one.
	if n, err := h.Server.QueueDriftChecks(ctx); err != nil || n != 1 {
		t.Fatalf("QueueDriftChecks = %d, %v; want 1 stack", n, err)
	}
	if js, _ := admin.StackJobs(ctx, st.ID); len(js) == 0 || js[0].Kind != "drift" {
		t.Fatalf("newest job after QueueDriftChecks: %+v", js)
	} else {
		kloudtest.WaitJob(t, admin, js[0].ID)
	}

	// Delete: refused while applied, then gone once destroyed.
	err = admin.DeleteStack(ctx, st.ID)
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "initialized") {
		t.Errorf("delete of an applied stack: %v, want 409 naming its status", err)
	}
	if err := admin.DeleteTemplate(ctx, tpl.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("delete of a template in use: %v, want 409", err)
	}
	// An apply makes the stack match again: web[1] is built anew.
	ref, err = admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	if st.Drifted || len(machinesByLabel(st)) != 5 {
		t.Errorf("after the apply: drifted %v, %d machines; want no drift, 5 machines", st.Drifted, len(machinesByLabel(st)))
	}
	ref, err = admin.DestroyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	if err := admin.DeleteStack(ctx, st.ID); err != nil {
		t.Fatalf("delete of a destroyed stack: %v", err)
	}
	if list, _ := admin.Stacks(ctx); len(list) != 0 {
		t.Errorf("stacks after delete: %+v", list)
	}
	if _, err := admin.Stack(ctx, st.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("get deleted stack: %v, want 404", err)
	}
	if err := admin.DeleteTemplate(ctx, tpl.ID); err != nil {
		t.Errorf("delete of a template no stack uses: %v", err)
	}
}

const validatedTemplate = `
variable "web_count" {
  type    = number
  default = 1
  validation {
    condition     = var.web_count <= 3
    error_message = "web_count must be at most 3."
  }
}

variable "db_password" {
  type      = string
  sensitive = true
  validation {
    condition     = length(var.db_password) >= 8
    error_message = "db_password must be at least 8 characters."
  }
}

resource "sandbox_machine" "web" {
  count = var.web_count
  name  = "web-${count.index}"
  size  = "small"
}
`

// TestStackVariables checks declared variables end to end: a number given
// "abc" is a 422 naming it, at creation and at update; a sensitive value
// is masked in every answer, kept nowhere in clear under the data dir and
// reaches Terraform (its validation passes); a failing validation block
// fails the plan job with the variable's message.
func TestStackVariables(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	cred, tpl := sandboxTemplate(t, admin, "validated", validatedTemplate)
	vs, err := admin.TemplateVersions(ctx, tpl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || !vs[0].Active || len(vs[0].Variables) != 2 {
		t.Fatalf("versions = %+v", vs)
	}
	count, pw := vs[0].Variables[0], vs[0].Variables[1]
	if count.Type != "number" || count.Default != "1" || len(count.Validations) != 1 || count.Validations[0].ErrorMessage != "web_count must be at most 3." {
		t.Errorf("web_count = %+v", count)
	}
	if !pw.Sensitive || !pw.Required {
		t.Errorf("db_password = %+v", pw)
	}

	const secret = "correct-horse-battery"
	_, err = admin.CreateStack(ctx, client.CreateStackRequest{Title: "bad", TemplateID: tpl.ID, CredentialID: cred.ID,
		Variables: map[string]string{"web_count": "abc", "db_password": secret}})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "variables.web_count" || !strings.Contains(e.Message, "web_count") {
		t.Fatalf("web_count abc: %v, want 422 naming web_count", err)
	}
	_, err = admin.CreateStack(ctx, client.CreateStackRequest{Title: "bad", TemplateID: tpl.ID, CredentialID: cred.ID, Variables: map[string]string{"web_count": "2"}})
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "variables.db_password" {
		t.Fatalf("missing db_password: %v, want 422 naming it", err)
	}

	st, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "ok", TemplateID: tpl.ID, CredentialID: cred.ID,
		Variables: map[string]string{"web_count": "5", "db_password": secret}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Variables["db_password"] != secretmask.Mask || st.Variables["web_count"] != "5" {
		t.Errorf("stack variables = %v, want db_password masked", st.Variables)
	}
	bad := "abc"
	_, err = admin.UpdateStack(ctx, st.ID, client.UpdateStackRequest{Variables: map[string]*string{"web_count": &bad}})
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "variables.web_count" {
		t.Fatalf("PATCH web_count abc: %v, want 422 naming web_count", err)
	}

	// web_count 5 fails its validation at plan, with its message.
	ref, err := admin.PlanStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	j, err := admin.FollowJob(ctx, ref.JobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "failed" || !strings.Contains(j.Error, "web_count must be at most 3.") {
		t.Fatalf("plan with web_count 5: %s %q, want failed with the variable's message", j.Status, j.Error)
	}

	// The mask a GET showed, sent back, keeps the value.
	two, mask := "2", secretmask.Mask
	if st, err = admin.UpdateStack(ctx, st.ID, client.UpdateStackRequest{Variables: map[string]*string{"web_count": &two, "db_password": &mask}}); err != nil {
		t.Fatal(err)
	}
	if rec, err := h.Store.GetStack(ctx, st.ID); err != nil || rec.SecretVariables["db_password"].Reveal() != secret || rec.Variables["db_password"] != "" {
		t.Fatalf("stored db_password after PATCH with the mask: %v", err)
	}
	plan := planOf(t, admin, st.ID) // db_password reached Terraform: its validation passed
	if plan.Summary.Create != 2 {
		t.Errorf("plan = %+v, want 2 to create", plan.Summary)
	}
	for _, id := range []string{ref.JobID, plan.ID} {
		evs, err := admin.JobEvents(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if strings.Contains(ev.Message, secret) {
				t.Errorf("job %s event %d shows the sensitive value", id, ev.Seq)
			}
		}
		jj, _ := admin.Job(ctx, id)
		if b, _ := json.Marshal(jj); strings.Contains(string(b), secret) {
			t.Errorf("job %s answer shows the sensitive value", id)
		}
	}
	if got, _ := admin.Stack(ctx, st.ID); got.Variables["db_password"] != secretmask.Mask {
		t.Errorf("GET stack variables = %v", got.Variables)
	}
	// Nothing under the data dir holds it in clear (store, work dirs).
	_ = filepath.WalkDir(h.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the sensitive value in clear", path)
		}
		return nil
	})
}

// TestTemplateVersionsAPI checks versions without running Terraform:
// parse and policy checks on push (422 with diagnostics), numbering, the
// active version, PATCH and DELETE while a stack uses the template.
func TestTemplateVersionsAPI(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	cred, tpl := sandboxTemplate(t, admin, "web", webTemplate(1, "small"))
	if tpl.ActiveVersion != 1 {
		t.Fatalf("new template's active version = %d", tpl.ActiveVersion)
	}
	_, err := admin.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: "resource \"sandbox_machine\" \"x\" {\n  name = \n}\n"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || len(e.Diagnostics) == 0 || e.Diagnostics[0].Line == 0 {
		t.Fatalf("push of a broken template: %v, want 422 with diagnostics", err)
	}
	_, err = admin.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: `resource "sandbox_machine" "x" {
  name = "x"
  provisioner "local-exec" {
    command = "id"
  }
}
`})
	if apiStatus(err) != http.StatusUnprocessableEntity {
		t.Fatalf("push of a local-exec template: %v, want 422", err)
	}
	v2, err := admin.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: webTemplate(2, "medium"), Message: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Message != "two" || v2.Active {
		t.Fatalf("version 2 = %+v", v2)
	}
	st, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st.TemplateVersion != 1 {
		t.Errorf("stack pins %d before the template's active version moved, want 1", st.TemplateVersion)
	}
	two, nine := 2, 9
	title := "web v2"
	got, err := admin.UpdateTemplate(ctx, tpl.ID, client.UpdateTemplateRequest{Title: &title, ActiveVersion: &two})
	if err != nil {
		t.Fatal(err)
	}
	if got.ActiveVersion != 2 || got.Title != "web v2" || got.Content != webTemplate(2, "medium") {
		t.Errorf("after PATCH: %+v", got)
	}
	if _, err := admin.UpdateTemplate(ctx, tpl.ID, client.UpdateTemplateRequest{ActiveVersion: &nine}); apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("PATCH active_version 9: %v, want 422", err)
	}
	if _, err := admin.UpdateStack(ctx, st.ID, client.UpdateStackRequest{TemplateVersion: &nine}); apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("PATCH stack template_version 9: %v, want 422", err)
	}
	st2, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "s2", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st2.TemplateVersion != 2 {
		t.Errorf("new stack pins %d, want the active version 2", st2.TemplateVersion)
	}
	v1, err := admin.TemplateVersion(ctx, tpl.ID, 1)
	if err != nil || v1.Content != webTemplate(1, "small") || v1.Active {
		t.Errorf("version 1 = %+v, %v", v1, err)
	}
	if _, err := admin.TemplateVersion(ctx, tpl.ID, 3); apiStatus(err) != http.StatusNotFound {
		t.Errorf("version 3: %v, want 404", err)
	}
	if err := admin.DeleteTemplate(ctx, tpl.ID); apiStatus(err) != http.StatusConflict {
		t.Errorf("delete of a used template: %v, want 409", err)
	}
	// Never-applied stacks are deleted at once; then the template goes.
	for _, id := range []string{st.ID, st2.ID} {
		if err := admin.DeleteStack(ctx, id); err != nil {
			t.Fatalf("delete never-applied stack: %v", err)
		}
	}
	if err := admin.DeleteTemplate(ctx, tpl.ID); err != nil {
		t.Fatalf("delete of an unused template: %v", err)
	}
	if _, err := admin.Template(ctx, tpl.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("deleted template: %v, want 404", err)
	}
	// A member sees none of another's templates.
	member := h.Member(t, "mia")
	if _, err := member.TemplateVersions(ctx, tpl.ID); apiStatus(err) != http.StatusNotFound {
		t.Errorf("member lists another's versions: %v, want 404", err)
	}
}

// TestReplacedMachineIsNew changes what replaces a sandbox machine (its
// user data): the plan says replace, and after the apply the stack's
// machine at that label is a new Kloud machine, its predecessor Terminated
// at the replacement with its history kept.
func TestReplacedMachineIsNew(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	content := func(script string) string {
		return "resource \"sandbox_machine\" \"m\" {\n  name      = \"m\"\n  user_data = \"" + script + "\"\n}\n"
	}
	_, tpl, st := newSandboxStack(t, admin, "m", content("echo one"))
	ref, err := admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	old := st.Machines[0]
	if _, err := admin.CreateTemplateVersion(ctx, tpl.ID, client.CreateTemplateVersionRequest{Content: content("echo two")}); err != nil {
		t.Fatal(err)
	}
	two := 2
	if _, err := admin.UpdateStack(ctx, st.ID, client.UpdateStackRequest{TemplateVersion: &two}); err != nil {
		t.Fatal(err)
	}
	plan := planOf(t, admin, st.ID)
	if plan.Summary.Replace != 1 || len(plan.Machines) != 1 || plan.Machines[0].MachineID != old.ID || plan.Machines[0].Action != "replace" {
		t.Fatalf("plan = %+v, machines %+v; want %s replaced", plan.Summary, plan.Machines, old.ID)
	}
	ref, err = admin.ApplyPlan(ctx, st.ID, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	live := machinesByLabel(st)
	successor, ok := live["sandbox_machine.m"]
	if !ok || successor.ID == old.ID || successor.State != machinestate.Running {
		t.Fatalf("after the replace: %+v; want a new running machine, not %s", live, old.ID)
	}
	prev, err := admin.Machine(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if prev.State != machinestate.Terminated || !strings.HasPrefix(prev.Reason, "replaced by ") {
		t.Errorf("predecessor %s: %s %q, want Terminated, replaced by …", old.ID, prev.State, prev.Reason)
	}
	hs, err := h.Store.MachineHistory(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) < 2 || hs[0].State != machinestate.Running || hs[len(hs)-1].State != machinestate.Terminated {
		t.Errorf("predecessor history = %+v, want Running … Terminated", hs)
	}
}

// TestSavedPlanConfined plans and applies a saved plan with Terraform and
// the sandbox confined: the plan file Terraform wrote is read back, and
// handed to the confined apply.
func TestSavedPlanConfined(t *testing.T) {
	h := kloudtest.New(t, kloudtest.Confined(t))
	ctx := context.Background()
	admin := h.Admin
	_, _, st := newSandboxStack(t, admin, "web", webTemplate(1, "small"))
	plan := planOf(t, admin, st.ID)
	if plan.Summary.Create != 1 {
		t.Fatalf("plan = %+v, want 1 to create", plan.Summary)
	}
	ref, err := admin.ApplyPlan(ctx, st.ID, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	if st, _ = admin.Stack(ctx, st.ID); len(machinesByLabel(st)) != 1 || st.Status != machinestate.StackInitialized {
		t.Fatalf("after the confined apply: %s, %d machines", st.Status, len(st.Machines))
	}
}
