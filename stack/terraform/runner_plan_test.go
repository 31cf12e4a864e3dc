package terraform

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/kloud/kloud/stack"
)

// TestRunnerSavedPlan plans to a file, applies exactly that file, and
// refuses a file made on a state that moved since.
func TestRunnerSavedPlan(t *testing.T) {
	backend := newMemBackend()
	r := newTestRunner(t, backend)
	ctx := context.Background()
	v1 := `resource "terraform_data" "a" {
  input = "one"
}
`
	v2 := `resource "terraform_data" "a" {
  input = "two"
}
resource "terraform_data" "b" {
  input = "new"
}
variable "secret" {
  type      = string
  sensitive = true
}
`
	if _, err := r.Apply(ctx, Run{Key: "k", Template: hclTemplate(v1, nil)}); err != nil {
		t.Fatal(err)
	}
	before := backend.latest(t, "k").Serial
	env := map[string]stack.Secret{"secret": "s3cr3t-value"}
	phases := map[string]time.Duration{}
	run := Run{Key: "k", Template: hclTemplate(v2, env), Phase: func(cmd string, d time.Duration) { phases[cmd] += d }}
	sp, err := r.PlanToFile(ctx, run, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sp.StateSerial != before || sp.StateLineage == "" || len(sp.File) == 0 || !sp.Changes {
		t.Fatalf("saved plan: serial %d (state %d), lineage %q, %d bytes, changes %v", sp.StateSerial, before, sp.StateLineage, len(sp.File), sp.Changes)
	}
	for _, cmd := range []string{"init", "plan", "show"} {
		if _, ok := phases[cmd]; !ok {
			t.Errorf("phases %v lack %s", phases, cmd)
		}
	}
	got := addresses(PlanChanges(sp.Plan, nil), func(c ResourceChange) string { return c.Address + " " + c.Action })
	if want := []string{"terraform_data.a update", "terraform_data.b create"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	if len(backend.saved("k")) != 1 {
		t.Error("planning saved a state")
	}
	stale, err := r.PlanToFile(ctx, run, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The saved plan is applied even though the template given now says
	// something else: the plan file holds its configuration.
	res, err := r.ApplyPlanFile(ctx, Run{Key: "k", Template: hclTemplate(v2, env)}, sp.File)
	if err != nil {
		t.Fatal(err)
	}
	if addrs := stateAddrs(res.Resources); !reflect.DeepEqual(addrs, []string{"terraform_data.a", "terraform_data.b"}) {
		t.Errorf("state after the plan = %v", addrs)
	}
	if planFileExists(r.WorkDir("k")) {
		t.Error("the saved plan file stays in the working dir")
	}
	_, err = r.ApplyPlanFile(ctx, Run{Key: "k", Template: hclTemplate(v2, env)}, stale.File)
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("apply of a plan made before the last apply: %v, want Terraform's stale plan error", err)
	}
}

func TestPlanChanges(t *testing.T) {
	p := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
		{Address: "m.web[0]", Type: "m", Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{
			Actions:         tfjson.Actions{tfjson.ActionUpdate},
			Before:          map[string]any{"id": "x1", "size": "small", "token": "old", "pid": 5.0, "same": "s"},
			After:           map[string]any{"id": "x1", "size": "medium", "token": "new", "same": "s"},
			AfterUnknown:    map[string]any{"pid": true},
			BeforeSensitive: map[string]any{"token": true},
			AfterSensitive:  map[string]any{"token": true},
		}},
		{Address: "m.db", Type: "m", Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{
			Actions:      tfjson.Actions{tfjson.ActionDelete, tfjson.ActionCreate},
			Before:       map[string]any{"id": "x2", "user_data": "a"},
			After:        map[string]any{"user_data": "b"},
			AfterUnknown: map[string]any{"id": true},
		}},
		{Address: "m.old", Type: "m", Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{
			Actions: tfjson.Actions{tfjson.ActionDelete}, Before: map[string]any{"id": "x3"},
		}},
		{Address: "m.same", Type: "m", Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionNoop}}},
		{Address: "data.d.x", Type: "d", Mode: tfjson.DataResourceMode, Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionRead}}},
	}}
	got := PlanChanges(p, []string{"kloud_url"})
	if len(got) != 3 {
		t.Fatalf("changes = %+v, want 3 (no no-op, no data source)", got)
	}
	db, old, web := got[0], got[1], got[2]
	if db.Action != ActionReplace || len(db.Changes) != 2 || db.Changes[0].After != unknownMark || db.Changes[1].Name != "user_data" || db.ID != "x2" {
		t.Errorf("db = %+v", db)
	}
	if old.Action != ActionDestroy || len(old.Changes) != 0 {
		t.Errorf("old = %+v", old)
	}
	want := []AttributeChange{
		{Name: "pid", Before: 5.0, After: unknownMark},
		{Name: "size", Before: "small", After: "medium"},
		{Name: "token", Before: sensitiveMark, After: sensitiveMark},
	}
	if web.Action != ActionUpdate || !reflect.DeepEqual(web.Changes, want) {
		t.Errorf("web = %+v, want changes %+v", web, want)
	}
	// A drift that changed only ignored attributes is no drift.
	drift := PlanDrift(&tfjson.Plan{ResourceDrift: p.ResourceChanges[:1]}, []string{"pid", "size", "token"})
	if len(drift) != 0 {
		t.Errorf("drift of ignored attributes = %+v", drift)
	}
}
