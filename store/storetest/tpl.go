package storetest

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

var templateVersionCases = []testCase{
	{"CreateGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tpl := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, tpl))
		eq(t, "new template's active version", tpl.ActiveVersion, 1)
		for i, content := range []string{"v1", "v2", "v3"} {
			v := &stack.TemplateVersion{TemplateID: tpl.ID, Version: i + 1, Format: stack.FormatHCL, Content: content,
				Message: "msg " + content, CreatedBy: "usr-1", CreatedAt: t0.Add(time.Duration(i) * time.Minute)}
			ok(t, s.CreateTemplateVersion(ctx, v))
		}
		dup := &stack.TemplateVersion{TemplateID: tpl.ID, Version: 2, Format: stack.FormatHCL, Content: "again"}
		is(t, s.CreateTemplateVersion(ctx, dup), store.ErrConflict, "a version number twice")
		orphan := &stack.TemplateVersion{TemplateID: "tpl-missing", Version: 1, Format: stack.FormatHCL, Content: "x"}
		is(t, s.CreateTemplateVersion(ctx, orphan), store.ErrNotFound, "a version of a missing template")
		is(t, s.CreateTemplateVersion(ctx, &stack.TemplateVersion{TemplateID: tpl.ID, Format: stack.FormatHCL}), store.ErrInvalid, "version 0")
		got, err := s.GetTemplateVersion(ctx, tpl.ID, 2)
		ok(t, err)
		eq(t, "content", got.Content, "v2")
		eq(t, "message", got.Message, "msg v2")
		eq(t, "created_by", got.CreatedBy, "usr-1")
		sameTime(t, "created_at", got.CreatedAt, t0.Add(time.Minute))
		_, err = s.GetTemplateVersion(ctx, tpl.ID, 9)
		is(t, err, store.ErrNotFound, "missing version")
		all, err := s.ListTemplateVersions(ctx, tpl.ID)
		ok(t, err)
		if len(all) != 3 || all[0].Version != 1 || all[2].Version != 3 {
			t.Fatalf("ListTemplateVersions = %d versions, want 1, 2, 3", len(all))
		}
		none, err := s.ListTemplateVersions(ctx, "tpl-missing")
		ok(t, err)
		eq(t, "versions of a missing template", len(none), 0)
	}},
	{"UpdateTemplate", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tpl := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, tpl))
		tpl.Title, tpl.ActiveVersion, tpl.Format, tpl.Content = "renamed", 2, stack.FormatJSON, `{"v":2}`
		ok(t, s.UpdateTemplate(ctx, tpl))
		got, err := s.GetTemplate(ctx, tpl.ID)
		ok(t, err)
		eq(t, "title", got.Title, "renamed")
		eq(t, "active version", got.ActiveVersion, 2)
		eq(t, "content", got.Content, `{"v":2}`)
		eq(t, "format", got.Format, stack.FormatJSON)
		missing := *tpl
		missing.ID = "tpl-missing"
		is(t, s.UpdateTemplate(ctx, &missing), store.ErrNotFound, "update missing")
		tpl.ActiveVersion = 0
		is(t, s.UpdateTemplate(ctx, tpl), store.ErrInvalid, "active version 0")
	}},
}

var stackUpdateCases = []testCase{
	{"UpdateSecretVariables", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		st := newStack("usr-1", "tpl-1", "cred-1")
		st.TemplateVersion = 2
		st.SecretVariables = map[string]stack.Secret{"db_password": "hunter2"}
		ok(t, s.CreateStack(ctx, st))
		got, err := s.GetStack(ctx, st.ID)
		ok(t, err)
		eq(t, "template version", got.TemplateVersion, 2)
		eq(t, "secret variable", got.SecretVariables["db_password"].Reveal(), "hunter2")
		plain := newStack("usr-1", "tpl-1", "cred-1")
		ok(t, s.CreateStack(ctx, plain))
		got, err = s.GetStack(ctx, plain.ID)
		ok(t, err)
		eq(t, "default template version", got.TemplateVersion, 1)
		eq(t, "no secret variables", len(got.SecretVariables), 0)

		st.Title, st.TemplateVersion = "renamed", 3
		st.Variables = map[string]string{"count": "5"}
		st.SecretVariables = map[string]stack.Secret{"db_password": "s3cret", "api_key": "k"}
		st.UpdatedAt = t0.Add(time.Hour)
		ok(t, s.UpdateStack(ctx, st))
		got, err = s.GetStack(ctx, st.ID)
		ok(t, err)
		eq(t, "title", got.Title, "renamed")
		eq(t, "template version", got.TemplateVersion, 3)
		if !maps.Equal(got.Variables, st.Variables) {
			t.Errorf("variables = %v, want %v", got.Variables, st.Variables)
		}
		eq(t, "secret variable", got.SecretVariables["db_password"].Reveal(), "s3cret")
		eq(t, "second secret variable", got.SecretVariables["api_key"].Reveal(), "k")
		sameTime(t, "updated_at", got.UpdatedAt, t0.Add(time.Hour))
		eq(t, "agent secret kept", got.AgentSecret.Reveal(), "agent-secret-value")
		st.SecretVariables = nil
		ok(t, s.UpdateStack(ctx, st))
		got, err = s.GetStack(ctx, st.ID)
		ok(t, err)
		eq(t, "secret variables cleared", len(got.SecretVariables), 0)
		missing := *st
		missing.ID = "stk-missing"
		is(t, s.UpdateStack(ctx, &missing), store.ErrNotFound, "update missing")
	}},
	{"Delete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tpl := newTemplate("usr-1")
		ok(t, s.CreateTemplate(ctx, tpl))
		st := newStack("usr-1", tpl.ID, "cred-1")
		ok(t, s.CreateStack(ctx, st))
		is(t, s.DeleteTemplate(ctx, tpl.ID), store.ErrConflict, "delete a template a stack uses")
		ok(t, s.PutPlan(ctx, &store.SavedPlan{ID: "job-p1", StackID: st.ID, OwnerID: "usr-1", TemplateVersion: 1, CreatedAt: t0}))
		ok(t, s.PutDrift(ctx, &store.Drift{StackID: st.ID, CheckedAt: t0}))
		ok(t, s.DeleteStack(ctx, st.ID))
		_, err := s.GetStack(ctx, st.ID)
		is(t, err, store.ErrNotFound, "get deleted stack")
		_, err = s.GetPlan(ctx, "job-p1")
		is(t, err, store.ErrNotFound, "plan of a deleted stack")
		_, err = s.GetDrift(ctx, st.ID)
		is(t, err, store.ErrNotFound, "drift of a deleted stack")
		list, err := s.ListStacks(ctx, "")
		ok(t, err)
		eq(t, "stacks left", len(list), 0)
		is(t, s.DeleteStack(ctx, st.ID), store.ErrNotFound, "delete twice")
		ok(t, s.DeleteTemplate(ctx, tpl.ID))
	}},
}

var planCases = []testCase{
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		file := []byte("PK\x03\x04 a plan file with TF_VAR values")
		p := &store.SavedPlan{ID: "job-1", StackID: "stk-1", OwnerID: "usr-1", TemplateVersion: 2, StateSerial: 7,
			StateLineage: "lin-1", File: file, Result: []byte(`{"resources":[]}`), CreatedAt: t0}
		ok(t, s.PutPlan(ctx, p))
		got, err := s.GetPlan(ctx, "job-1")
		ok(t, err)
		eq(t, "stack", got.StackID, "stk-1")
		eq(t, "owner", got.OwnerID, "usr-1")
		eq(t, "template version", got.TemplateVersion, 2)
		eq(t, "serial", got.StateSerial, int64(7))
		eq(t, "lineage", got.StateLineage, "lin-1")
		if !bytes.Equal(got.File, file) {
			t.Errorf("file = %q, want %q", got.File, file)
		}
		eq(t, "result", string(got.Result), `{"resources":[]}`)
		sameTime(t, "created_at", got.CreatedAt, t0)
		p.StateSerial, p.File = -1, nil
		ok(t, s.PutPlan(ctx, p))
		got, err = s.GetPlan(ctx, "job-1")
		ok(t, err)
		eq(t, "replaced serial", got.StateSerial, int64(-1))
		eq(t, "replaced file", len(got.File), 0)
		_, err = s.GetPlan(ctx, "job-missing")
		is(t, err, store.ErrNotFound, "missing plan")
		is(t, s.PutPlan(ctx, &store.SavedPlan{StackID: "stk-1"}), store.ErrInvalid, "plan without id")
	}},
}

var driftCases = []testCase{
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetDrift(ctx, "stk-1")
		is(t, err, store.ErrNotFound, "never checked")
		d := &store.Drift{StackID: "stk-1", CheckedAt: t0, Resources: []store.DriftedResource{
			{Address: "sandbox_machine.web[0]", Type: "sandbox_machine", Action: "delete"},
			{Address: "sandbox_machine.db", Type: "sandbox_machine", Action: "update", Changed: []string{"size"}},
		}}
		ok(t, s.PutDrift(ctx, d))
		got, err := s.GetDrift(ctx, "stk-1")
		ok(t, err)
		sameTime(t, "checked_at", got.CheckedAt, t0)
		if len(got.Resources) != 2 || got.Resources[0].Action != "delete" || got.Resources[1].Changed[0] != "size" {
			t.Errorf("resources = %+v", got.Resources)
		}
		ok(t, s.PutDrift(ctx, &store.Drift{StackID: "stk-1", CheckedAt: t0.Add(time.Hour)}))
		got, err = s.GetDrift(ctx, "stk-1")
		ok(t, err)
		sameTime(t, "second check", got.CheckedAt, t0.Add(time.Hour))
		if got.Resources == nil || len(got.Resources) != 0 {
			t.Errorf("resources after a clean check = %#v, want empty", got.Resources)
		}
	}},
}

var jobTimingCases = []testCase{
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		got, err := s.GetJobTimings(ctx, "job-1")
		ok(t, err)
		eq(t, "timings of a job without", len(got), 0)
		ok(t, s.PutJobTimings(ctx, "job-1", map[string]int64{"compose": 3, "init": 1200, "apply": 4500}))
		got, err = s.GetJobTimings(ctx, "job-1")
		ok(t, err)
		eq(t, "init", got["init"], int64(1200))
		eq(t, "apply", got["apply"], int64(4500))
		ok(t, s.PutJobTimings(ctx, "job-1", map[string]int64{"record": 5}))
		got, err = s.GetJobTimings(ctx, "job-1")
		ok(t, err)
		eq(t, "replaced", len(got), 1)
	}},
	{"ListStackJobs", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var ids []string
		for i := range 3 {
			j := newJob("stack/stk-1", t0.Add(time.Duration(i)*time.Minute))
			ok(t, s.CreateJob(ctx, j))
			ids = append(ids, j.ID)
			_, err := s.ClaimJob(ctx, "w1", t0.Add(time.Duration(i)*time.Minute), time.Minute, 0)
			ok(t, err)
			ok(t, s.FinishJob(ctx, j.ID, "w1", jobs.StatusSucceeded, "", t0.Add(time.Duration(i)*time.Minute+time.Second)))
		}
		other := newJob("stack/stk-2", t0)
		other.StackID = "stk-2"
		ok(t, s.CreateJob(ctx, other))
		got, err := s.ListStackJobs(ctx, "stk-1", 0)
		ok(t, err)
		if len(got) != 3 || got[0].ID != ids[2] || got[2].ID != ids[0] {
			t.Fatalf("ListStackJobs = %d jobs, want the 3 of stk-1 newest first", len(got))
		}
		eq(t, "status", got[0].Status, jobs.StatusSucceeded)
		got, err = s.ListStackJobs(ctx, "stk-1", 2)
		ok(t, err)
		eq(t, "limited", len(got), 2)
		none, err := s.ListStackJobs(ctx, "stk-none", 0)
		ok(t, err)
		eq(t, "jobs of a stack without", len(none), 0)
	}},
}
