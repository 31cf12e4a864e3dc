package kloud_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestDerivedAgentTokenMasked: a template that prints a machine's agent
// token through nonsensitive() shows the mask in the job's events, never
// the token, although the token is derived inside Terraform.
func TestDerivedAgentTokenMasked(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	const tpl = `
resource "sandbox_machine" "leaky" {
  name = "leaky"
}
output "token" {
  value = nonsensitive(sandbox_machine.leaky.agent_token)
}
`
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "local", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "leaky", Provider: "sandbox", Content: tpl, Format: "hcl"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "leaky", TemplateID: tp.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job := kloudtest.WaitJob(t, h.Admin, ref.JobID); job.Status != "succeeded" {
		t.Fatalf("apply: %s %s", job.Status, job.Error)
	}
	events, err := h.Admin.JobEvents(ctx, ref.JobID)
	if err != nil {
		t.Fatal(err)
	}
	var outputs string
	for _, e := range events {
		if strings.Contains(e.Message, "token = ") {
			outputs += e.Message + "\n"
		}
	}
	if outputs == "" {
		t.Fatal("the output was not printed at all")
	}
	for _, line := range strings.Split(strings.TrimSpace(outputs), "\n") {
		_, val, _ := strings.Cut(line, "token = ")
		val = strings.Trim(val, `"`)
		if len(val) == 64 && strings.Trim(val, "0123456789abcdef") == "" {
			t.Errorf("the agent token is in the events: %q", line)
		}
	}
}
