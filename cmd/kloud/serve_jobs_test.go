package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestServeRefusesBadJobFlags: an unparsable job timeout, as a flag or in
// KLOUD_JOB_TIMEOUT, stops `kloud serve` before it opens anything, naming
// where the value came from.
func TestServeRefusesBadJobFlags(t *testing.T) {
	cases := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"flag not a duration", "", []string{"--job-timeout", "soon"}, "job-timeout"},
		{"flag unknown kind", "", []string{"--job-timeout", "30m,reboot=1m"}, `unknown job kind "reboot"`},
		{"env", "apply=never", nil, "KLOUD_JOB_TIMEOUT"},
		{"max per owner", "", []string{"--max-jobs-per-owner", "two"}, "max-jobs-per-owner"},
		{"terraform grace", "", []string{"--terraform-grace", "1 minute"}, "terraform-grace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KLOUD_JOB_TIMEOUT", c.env)
			dataDir := t.TempDir()
			err := serve(append([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:0"}, c.args...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("serve %v = %v, want an error naming %q", c.args, err, c.want)
			}
		})
	}
}

// TestJobCancelCommand: `kloud job cancel ID` stops a running apply, which
// then fails with the reason; cancelling it again is the API's 409.
func TestJobCancelCommand(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) { c.TerraformGrace = time.Second })
	ctx := context.Background()
	cred, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	heavy := "locals {\n  heavy = [for i in range(1000) : [for j in range(1000) : \"${i}-${j}\"]]\n}\n\n" +
		"resource \"sandbox_machine\" \"m\" {\n  name = \"m-${length(local.heavy)}\"\n}\n"
	tpl, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "heavy", Provider: "sandbox", Content: heavy})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--server", h.URL, "--token", h.AdminToken, "-o", "json"}
	if err := run(append([]string{"job", "cancel", ref.JobID}, flags...)); err != nil {
		t.Fatalf("kloud job cancel: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	j, err := h.Admin.WaitJob(wctx, ref.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "failed" || !strings.HasPrefix(j.Error, "cancelled by ") {
		t.Fatalf("job = %s %q, want failed, cancelled by the admin", j.Status, j.Error)
	}
	err = run(append([]string{"job", "cancel", ref.JobID}, flags...))
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("cancel an ended job: %v, want a 409", err)
	}
}
