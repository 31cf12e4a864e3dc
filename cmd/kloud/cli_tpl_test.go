package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/kloudtest"
)

const twoWeb = `
resource "sandbox_machine" "web" {
  count = 2
  name  = "web-${count.index}"
  size  = count.index == 0 ? "medium" : "small"
}
`

// TestCLIPlanLoop runs the daily loop from the CLI: push a version, pin
// it, plan (printed as + ~ -/+ - with the cost), apply exactly that plan,
// list the stack's jobs, then destroy and delete the stack.
func TestCLIPlanLoop(t *testing.T) {
	h := kloudtest.New(t)
	s := session{t, h}
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1.tf"), filepath.Join(dir, "v2.tf")
	if err := os.WriteFile(v1, []byte(oneMachine), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, []byte(twoWeb), 0o600); err != nil {
		t.Fatal(err)
	}
	var creds []client.Credential
	s.json(&creds, "credential", "add", "sandbox", "--title", "local")
	var tpls []client.Template
	s.json(&tpls, "template", "create", v1, "--title", "web")
	tpl := tpls[0].ID
	var stacks []client.Stack
	s.json(&stacks, "stack", "create", "--title", "demo", "--template", tpl, "--credential", creds[0].ID)
	st := stacks[0].ID
	s.table([]string{"stack", "apply", st, "--follow"}, "100%", "succeeded")

	var vs []client.TemplateVersion
	s.json(&vs, "template", "push", v2, "--template", tpl, "--message", "two web", "--activate")
	if len(vs) != 1 || vs[0].Version != 2 || !vs[0].Active {
		t.Fatalf("template push = %+v", vs)
	}
	s.both(&vs, []string{"template", "versions", tpl}, "VERSION", "MESSAGE", "two web")
	if len(vs) != 2 {
		t.Fatalf("versions = %+v", vs)
	}

	out := s.table([]string{"stack", "plan", st, "--version", "2"}, "  ~ sandbox_machine.web[0]", `size: "small" -> "medium"`,
		"  + sandbox_machine.web[1]", "Plan: 1 to add, 1 to change, 0 to destroy.", "Cost:", "kloud stack apply "+st+" --plan ")
	planID := out[strings.LastIndex(out, "--plan ")+len("--plan "):]
	planID = strings.TrimSpace(planID)
	s.table([]string{"stack", "apply", st, "--plan", planID, "--follow"}, "100%", "succeeded")
	var jobs []client.Job
	s.both(&jobs, []string{"stack", "jobs", st}, "COMPOSE", "INIT", "APPLY", "plan", "apply")
	if len(jobs) != 3 || jobs[0].Timings["apply"] == 0 && jobs[0].Timings["init"] == 0 {
		t.Errorf("stack jobs = %+v", jobs)
	}
	var updated []client.Stack
	s.json(&updated, "stack", "update", st, "--title", "renamed")
	if updated[0].Title != "renamed" || updated[0].TemplateVersion != 2 {
		t.Errorf("stack update = %+v", updated[0])
	}
	_, errOut, code := kloudCmd(t, "stack", "delete", st, "--server", h.URL, "--token", h.AdminToken)
	if code != exitError || !strings.Contains(errOut, "409") {
		t.Errorf("delete of an applied stack: exit %d, stderr:\n%s", code, errOut)
	}
	s.table([]string{"stack", "destroy", st, "--follow"}, "100%", "succeeded")
	if out := s.run("stack", "delete", st); out != "" {
		t.Errorf("stack delete printed %q", out)
	}
}
