package kloud_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

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
	_, _, job := applyOne(t, h.Admin, tpl)
	if job.Status != "succeeded" {
		t.Fatalf("apply: %s %s", job.Status, job.Error)
	}
	events, err := h.Admin.JobEvents(ctx, job.ID)
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

// TestDataDirPrivate: after stacks were applied (machines running, user
// data run, reports possible) and destroyed, nothing under the data dir is
// readable by group or others, and no Terraform state stays in clear.
func TestDataDirPrivate(t *testing.T) {
	h := kloudtest.New(t, kloudtest.Confined(t))
	ctx := context.Background()
	_, st, job := applyOne(t, h.Admin, twoMachines)
	if job.Status != "succeeded" {
		t.Fatalf("apply: %s %s", job.Status, job.Error)
	}
	check := func(when string) {
		t.Helper()
		err := filepath.WalkDir(h.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 || d.Type()&fs.ModeSocket != 0 {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil // removed meanwhile
			}
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s is %v", when, strings.TrimPrefix(p, h.DataDir), info.Mode().Perm())
			}
			if strings.HasSuffix(p, ".tfstate") || strings.HasSuffix(p, ".tfstate.backup") || strings.HasSuffix(p, ".tfplan") {
				t.Errorf("%s: %s stayed on disk", when, strings.TrimPrefix(p, h.DataDir))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check("after apply")
	ref, err := h.Admin.DestroyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job := kloudtest.WaitJob(t, h.Admin, ref.JobID); job.Status != "succeeded" {
		t.Fatalf("destroy: %s %s", job.Status, job.Error)
	}
	check("after destroy")
}
