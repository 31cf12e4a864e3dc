package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/store"
)

// maxStackJobs bounds the jobs GET /api/v1/stacks/{id}/jobs answers.
const maxStackJobs = 1000

// addDrift adds the stack's last drift check to its view.
func (s *Server) addDrift(ctx context.Context, v *client.Stack) error {
	d, err := s.st.GetDrift(ctx, v.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stack %s drift: %w", v.ID, err)
	}
	v.Drift = &client.StackDrift{CheckedAt: d.CheckedAt, Resources: make([]client.DriftedResource, 0, len(d.Resources))}
	for _, r := range d.Resources {
		v.Drift.Resources = append(v.Drift.Resources, client.DriftedResource(r))
	}
	v.Drifted = len(d.Resources) > 0
	return nil
}

func (s *Server) handleUpdateStack(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req client.UpdateStackRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.updateStack(ctx, st, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.stackView(ctx, st)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// updateStack changes what the stack's next plan or apply uses: its title,
// its template version, its variables (merged; a null value removes one).
// The variables, old and new, are checked against the version the stack
// will use before anything is stored.
func (s *Server) updateStack(ctx context.Context, st *store.StackRecord, req client.UpdateStackRequest) error {
	if req.Title != nil {
		title := strings.TrimSpace(*req.Title)
		if title == "" {
			return unprocessable("title", "title may not be empty")
		}
		st.Title = title
	}
	t, err := s.st.GetTemplate(ctx, st.TemplateID)
	if err != nil {
		return fmt.Errorf("stack %s: template %s: %w", st.ID, st.TemplateID, err)
	}
	version := max(st.TemplateVersion, 1)
	if req.TemplateVersion != nil {
		version = *req.TemplateVersion
	}
	v, err := s.templateVersion(ctx, t, max(version, 1))
	if version < 1 || errors.Is(err, store.ErrNotFound) {
		return unprocessable("template_version", "template %s has no version %d", t.ID, version)
	}
	if err != nil {
		return err
	}
	vars := allVariables(st)
	for name, val := range req.Variables {
		switch _, secret := st.SecretVariables[name]; {
		case val == nil:
			delete(vars, name)
		case secret && *val == secretmask.Mask:
			// The mask a GET showed, sent back: the value stays.
		default:
			vars[name] = *val
		}
	}
	plain, secret, err := checkVariables(versionTemplate(t, v), vars)
	if err != nil {
		return err
	}
	st.TemplateVersion, st.Variables, st.SecretVariables, st.UpdatedAt = v.Version, plain, secret, s.now()
	if err := s.st.UpdateStack(ctx, st); err != nil {
		return fmt.Errorf("update stack %s: %w", st.ID, err)
	}
	return nil
}

// allVariables is every variable value of a stack, secret ones revealed:
// only for checking and composing, never for a response.
func allVariables(st *store.StackRecord) map[string]string {
	vars := make(map[string]string, len(st.Variables)+len(st.SecretVariables))
	maps.Copy(vars, st.Variables)
	for name, v := range st.SecretVariables {
		vars[name] = v.Reveal()
	}
	return vars
}

// handleDeleteStack deletes a stack that was destroyed or never applied
// (204); any other stack is a 409 naming its status.
func (s *Server) handleDeleteStack(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.deleteStack(ctx, st); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteStack(ctx context.Context, st *store.StackRecord) error {
	if busy, err := s.targetBusy(ctx, "stack/"+st.ID); err != nil {
		return err
	} else if busy {
		return conflict("status", "stack %s has a job queued or running; wait for it or cancel it", st.ID)
	}
	if st.Status != machinestate.StackDestroyed {
		applied, err := s.everApplied(ctx, st)
		if err != nil {
			return err
		}
		if st.Status != machinestate.StackNotInitialized || applied {
			return conflict("status", "stack %s is %s and holds resources; destroy it first (a stack can be deleted once destroyed, or if it was never applied)", st.ID, st.Status)
		}
	}
	if err := s.st.DeleteStack(ctx, st.ID); err != nil {
		return fmt.Errorf("delete stack %s: %w", st.ID, err)
	}
	if err := s.runner.RemoveWorkDir(st.ID); err != nil {
		s.log.Warn("remove work dir of deleted stack", "stack", st.ID, "error", err)
	}
	return nil
}

// everApplied reports whether a stack has a Terraform state or a machine
// that is not terminated.
func (s *Server) everApplied(ctx context.Context, st *store.StackRecord) (bool, error) {
	_, err := s.st.LatestStateVersion(ctx, st.ID)
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("stack %s state: %w", st.ID, err)
	}
	ms, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: st.ID})
	if err != nil {
		return false, fmt.Errorf("stack %s machines: %w", st.ID, err)
	}
	for _, m := range ms {
		if m.State != machinestate.Terminated {
			return true, nil
		}
	}
	return false, nil
}

func (s *Server) handleStackJobs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	js, err := s.st.ListStackJobs(ctx, st.ID, maxStackJobs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]client.Job, 0, len(js))
	for _, j := range js {
		v, err := s.jobDetail(ctx, j, false)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// jobDetail is a job's view with its timings and, with withPlan, the plan
// a plan job made.
func (s *Server) jobDetail(ctx context.Context, j *jobs.Job, withPlan bool) (client.Job, error) {
	v := jobView(j)
	if j.StackID == "" || j.Status.Active() {
		return v, nil // timings are kept when a stack job ends
	}
	t, err := s.st.GetJobTimings(ctx, j.ID)
	if err != nil {
		return v, err
	}
	if len(t) > 0 {
		v.Timings = t
	}
	if withPlan && j.Kind == jobs.KindPlan && j.Status == jobs.StatusSucceeded {
		p, err := s.st.GetPlan(ctx, j.ID)
		if errors.Is(err, store.ErrNotFound) {
			return v, nil
		}
		if err != nil {
			return v, fmt.Errorf("job %s plan: %w", j.ID, err)
		}
		var plan client.StackPlan
		if err := json.Unmarshal(p.Result, &plan); err != nil {
			return v, fmt.Errorf("decode plan %s: %w", j.ID, err)
		}
		v.Plan = &plan
	}
	return v, nil
}

// stackSecrets are the values a stack's job must mask: its secret
// variables.
func stackSecrets(st *store.StackRecord) []string {
	out := make([]string, 0, len(st.SecretVariables))
	for _, v := range st.SecretVariables {
		out = append(out, v.Reveal())
	}
	return out
}
