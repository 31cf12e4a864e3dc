package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
)

// savedPlanName is the name a saved plan file is written under for an
// apply: a generated file, so it is in place (and handed to the confined
// user) before Terraform starts.
const savedPlanName = "kloud-saved.tfplan"

// maxPlanFile bounds a plan file the runner keeps or applies.
const maxPlanFile = 64 << 20

// SavedPlan is a plan file Terraform wrote, with what it plans and the
// state it was made on. File holds every variable's value, secrets
// included: keep it sealed.
type SavedPlan struct {
	File []byte
	// Plan is `terraform show -json` of the file.
	Plan    *tfjson.Plan
	Changes bool
	// StateSerial and StateLineage name the state the plan was made on;
	// serial -1 when there was none.
	StateSerial  int64
	StateLineage string
}

// PlanOptions change what PlanToFile plans.
type PlanOptions struct {
	// RefreshOnly plans only to update the state from the real objects:
	// the plan's ResourceDrift lists what changed outside Terraform.
	RefreshOnly bool
}

// PlanToFile runs terraform init and plan -out, reads the plan file and its
// JSON, and removes the file from the working directory. It changes no
// state.
func (r *Runner) PlanToFile(ctx context.Context, run Run, opts PlanOptions) (*SavedPlan, error) {
	var out *SavedPlan
	_, err := r.do(ctx, run, "plan", func(ctx context.Context, s *session) error {
		planPath := filepath.Join(s.dir, planFileName)
		defer os.Remove(planPath)
		sp := &SavedPlan{StateSerial: -1}
		if data, err := os.ReadFile(filepath.Join(s.dir, stateFileName)); err == nil {
			if m, err := readStateMeta(data); err == nil {
				sp.StateSerial, sp.StateLineage = m.Serial, m.Lineage
			}
		}
		planOpts := []tfexec.PlanOption{tfexec.Out(planFileName)}
		if opts.RefreshOnly {
			planOpts = append(planOpts, tfexec.RefreshOnly(true))
		}
		if err := s.exec(ctx, "plan", func(ctx context.Context) error {
			var err error
			sp.Changes, err = s.tf.Plan(ctx, planOpts...)
			return err
		}); err != nil {
			return err
		}
		if err := s.exec(ctx, "show", func(ctx context.Context) error {
			var err error
			sp.Plan, err = s.tf.ShowPlanFile(ctx, planFileName)
			return err
		}); err != nil {
			return err
		}
		fi, err := os.Stat(planPath)
		if err != nil {
			return fmt.Errorf("read plan file: %w", err)
		}
		if fi.Size() > maxPlanFile {
			return fmt.Errorf("plan file is %d bytes; the limit is %d", fi.Size(), maxPlanFile)
		}
		if sp.File, err = os.ReadFile(planPath); err != nil {
			return fmt.Errorf("read plan file: %w", err)
		}
		out = sp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyPlanFile runs terraform init and applies exactly the saved plan
// file: Terraform refuses it when the state changed since the plan. Like
// Apply it returns the state left, saved, with any error.
func (r *Runner) ApplyPlanFile(ctx context.Context, run Run, file []byte) (*ApplyResult, error) {
	if len(file) == 0 {
		return nil, errors.New("apply plan: empty plan file")
	}
	if len(file) > maxPlanFile {
		return nil, fmt.Errorf("apply plan: plan file is %d bytes; the limit is %d", len(file), maxPlanFile)
	}
	if run.Template != nil {
		t := *run.Template
		t.Generated = maps.Clone(t.Generated)
		if t.Generated == nil {
			t.Generated = map[string][]byte{}
		}
		t.Generated[savedPlanName] = file
		run.Template = &t
	}
	return r.do(ctx, run, "apply", func(ctx context.Context, s *session) error {
		defer os.Remove(filepath.Join(s.dir, savedPlanName))
		return s.exec(ctx, "apply", func(ctx context.Context) error { return s.tf.Apply(ctx, tfexec.DirOrPlan(savedPlanName)) })
	})
}

// The actions of a ResourceChange.
const (
	ActionCreate  = "create"
	ActionUpdate  = "update"
	ActionReplace = "replace"
	ActionDestroy = "destroy"
)

// unknownMark stands for a value known only after apply.
const unknownMark = "(known after apply)"

// maxChangedAttributes bounds the attributes listed per resource, and
// maxValueText a string value's length in a listing.
const (
	maxChangedAttributes = 64
	maxValueText         = 1024
)

// ResourceChange is one managed resource a plan changes, with the
// top-level attributes that change (sensitive values masked).
type ResourceChange struct {
	Address string            `json:"address"`
	Type    string            `json:"type"`
	Action  string            `json:"action"`
	Changes []AttributeChange `json:"changes,omitempty"`
	// ID is the resource's "id" before the change, when it had one.
	ID string `json:"-"`
}

// AttributeChange is one attribute's value before and after.
type AttributeChange struct {
	Name   string `json:"name"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// PlanChanges lists the managed resources a plan creates, updates,
// replaces or destroys, in address order. Attributes named in hide (ones
// Kloud injects for itself) are left out.
func PlanChanges(p *tfjson.Plan, hide []string) []ResourceChange {
	if p == nil {
		return []ResourceChange{}
	}
	return changesOf(p.ResourceChanges, hide, false)
}

// PlanDrift lists the managed resources a refresh found changed outside
// Terraform: action update (with the attributes that changed) or destroy
// (the object is gone). Attributes named in ignore (hide, and values a
// provider observes rather than configures) do not count as drift.
func PlanDrift(p *tfjson.Plan, ignore []string) []ResourceChange {
	if p == nil {
		return []ResourceChange{}
	}
	return changesOf(p.ResourceDrift, ignore, true)
}

func changesOf(rcs []*tfjson.ResourceChange, hide []string, drift bool) []ResourceChange {
	out := []ResourceChange{}
	for _, rc := range rcs {
		if rc == nil || rc.Mode != tfjson.ManagedResourceMode || rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		var action string
		switch {
		case a.Replace():
			action = ActionReplace
		case a.Create():
			action = ActionCreate
		case a.Delete():
			action = ActionDestroy
		case a.Update():
			action = ActionUpdate
		default:
			continue
		}
		c := ResourceChange{Address: rc.Address, Type: rc.Type, Action: action}
		rawBefore, _ := rc.Change.Before.(map[string]any)
		rawAfter, _ := rc.Change.After.(map[string]any)
		before, _ := redactSensitive(rc.Change.Before, rc.Change.BeforeSensitive).(map[string]any)
		after, _ := redactSensitive(rc.Change.After, rc.Change.AfterSensitive).(map[string]any)
		unknown, _ := rc.Change.AfterUnknown.(map[string]any)
		if id, ok := rawBefore["id"].(string); ok {
			c.ID = id
		}
		if action != ActionDestroy {
			c.Changes = attributeChanges(rawBefore, rawAfter, before, after, unknown, hide)
			if drift && action == ActionUpdate && len(c.Changes) == 0 {
				continue // only ignored attributes changed
			}
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// attributeChanges compares the top-level attributes of rawBefore and
// rawAfter, and shows those that differ with their values in before and
// after (sensitive ones masked).
func attributeChanges(rawBefore, rawAfter, before, after, unknown map[string]any, hide []string) []AttributeChange {
	names := map[string]bool{}
	for k := range rawBefore {
		names[k] = true
	}
	for k := range rawAfter {
		names[k] = true
	}
	for k, v := range unknown {
		if v == true {
			names[k] = true
		}
	}
	var out []AttributeChange
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if slices.Contains(hide, name) {
			continue
		}
		b, a := before[name], after[name]
		if unknown[name] == true {
			a = unknownMark
		} else if reflect.DeepEqual(rawBefore[name], rawAfter[name]) {
			continue
		}
		if len(out) == maxChangedAttributes {
			out = append(out, AttributeChange{Name: "…", Before: nil, After: "more attributes change"})
			break
		}
		out = append(out, AttributeChange{Name: name, Before: clipValue(b), After: clipValue(a)})
	}
	return out
}

// clipValue bounds a value shown in a change listing.
func clipValue(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) > maxValueText {
			return x[:maxValueText] + "…"
		}
		return x
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil || len(b) > maxValueText {
			return "(a value of " + fmt.Sprint(len(b)) + " bytes)"
		}
		return x
	}
	return v
}

// planFileExists reports whether a leftover saved plan is in dir (tests).
func planFileExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, savedPlanName))
	return !errors.Is(err, fs.ErrNotExist)
}
