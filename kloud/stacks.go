package kloud

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

func (s *Server) stackView(ctx context.Context, st *store.StackRecord) (client.Stack, error) {
	ms, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: st.ID})
	if err != nil {
		return client.Stack{}, err
	}
	views := s.machineViews(ms, s.viewTime())
	vars := make(map[string]string, len(st.Variables)+len(st.SecretVariables))
	maps.Copy(vars, st.Variables)
	for name := range st.SecretVariables {
		vars[name] = secretmask.Mask
	}
	v := client.Stack{
		ID: st.ID, OwnerID: st.OwnerID, Title: st.Title, TemplateID: st.TemplateID, CredentialID: st.CredentialID,
		Provider: st.Provider, Variables: vars, Status: st.Status, Reason: st.Reason, Machines: views,
		CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt, TemplateVersion: max(st.TemplateVersion, 1),
	}
	if err := s.addDrift(ctx, &v); err != nil {
		return client.Stack{}, err
	}
	return v, nil
}

func (s *Server) handleCreateStack(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req client.CreateStackRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := s.createStack(ctx, actorFrom(ctx), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	view, err := s.stackView(ctx, st)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, view)
}

// createStack checks that the template and credential exist, are the
// actor's and agree on the provider, and that the variables are the
// template's.
func (s *Server) createStack(ctx context.Context, actor *user.User, req client.CreateStackRequest) (*store.StackRecord, error) {
	title := strings.TrimSpace(req.Title)
	if title == "" {
		return nil, unprocessable("title", "title is required")
	}
	if req.TemplateID == "" {
		return nil, unprocessable("template_id", "template_id is required")
	}
	if req.CredentialID == "" {
		return nil, unprocessable("credential_id", "credential_id is required")
	}
	t, err := s.templateFor(ctx, actor, req.TemplateID)
	if err != nil {
		return nil, unprocessableNotFound("template_id", err)
	}
	c, err := s.credentialFor(ctx, actor, req.CredentialID)
	if err != nil {
		return nil, unprocessableNotFound("credential_id", err)
	}
	if c.Provider != t.Provider {
		return nil, unprocessable("credential_id", "credential %s is for %s but template %s is for %s", c.ID, c.Provider, t.ID, t.Provider)
	}
	plain, secretVars, err := checkVariables(t, req.Variables)
	if err != nil {
		return nil, err
	}
	secret, err := stack.NewAgentSecret()
	if err != nil {
		return nil, fmt.Errorf("create stack: %w", err)
	}
	now := s.now()
	st := &store.StackRecord{
		Stack: stack.Stack{
			OwnerID: actor.ID, Title: title, TemplateID: t.ID, TemplateVersion: max(t.ActiveVersion, 1), CredentialID: c.ID, Provider: t.Provider,
			Variables: plain, Status: machinestate.StackNotInitialized, CreatedAt: now, UpdatedAt: now,
		},
		AgentSecret:     secret,
		SecretVariables: secretVars,
	}
	if err := s.st.CreateStack(ctx, st); err != nil {
		return nil, fmt.Errorf("create stack: %w", err)
	}
	return st, nil
}

// checkVariables refuses variables the template does not declare, values
// that do not parse for their type, and declared variables without a
// default that are missing. It splits the values into plain ones and those
// of variables the template declares sensitive.
func checkVariables(t *stack.Template, vars map[string]string) (map[string]string, map[string]stack.Secret, error) {
	p, err := requestProvider(t.Provider)
	if err != nil {
		return nil, nil, err
	}
	parsed, _, err := terraform.ValidateTemplateWith(t.FileName(), []byte(t.Content), t.Format, p.PolicyOptions())
	if err != nil {
		return nil, nil, err
	}
	plain := map[string]string{}
	var secret map[string]stack.Secret
	for name, raw := range vars {
		decl, ok := parsed.Variable(name)
		if !ok {
			declared := parsed.VariableNames()
			sort.Strings(declared)
			return nil, nil, unprocessable("variables."+clipInput(name), "variable %s is not declared by template %s (declared: %s)", quote(name), t.ID, strings.Join(declared, ", "))
		}
		if err := terraform.CheckVariableValue(decl, raw); err != nil {
			if decl.Sensitive {
				err = fmt.Errorf("variable %q (sensitive) has a value that does not parse as %s", name, cmp.Or(decl.Type, "its type"))
			}
			return nil, nil, unprocessable("variables."+name, "%v", err)
		}
		if decl.Sensitive {
			if secret == nil {
				secret = map[string]stack.Secret{}
			}
			secret[name] = stack.Secret(raw)
			continue
		}
		plain[name] = raw
	}
	for _, v := range parsed.Variables {
		if _, ok := vars[v.Name]; !ok && !v.HasDefault {
			return nil, nil, unprocessable("variables."+v.Name, "variable %q has no default and must be given", v.Name)
		}
	}
	return plain, secret, nil
}

func (s *Server) stackFor(ctx context.Context, actor *user.User, id string) (*store.StackRecord, error) {
	return owned(ctx, actor, "stack", id, s.st.GetStack, func(st *store.StackRecord) string { return st.OwnerID })
}

func (s *Server) handleListStacks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sts, err := s.st.ListStacks(ctx, ownerFilter(actorFrom(ctx)))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]client.Stack, 0, len(sts))
	for _, st := range sts {
		v, err := s.stackView(ctx, st)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetStack(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
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

func (s *Server) handleDestroyStack(w http.ResponseWriter, r *http.Request) {
	s.stackJob(w, r, machinestate.StackDestroy, jobs.KindDestroy)
}

// stackJob queues an apply or destroy. While a job runs the stack is
// in progress and the new job is refused naming the running one.
func (s *Server) stackJob(w http.ResponseWriter, r *http.Request, method machinestate.StackMethod, kind jobs.Kind) {
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !st.Status.InProgress() {
		if err := machinestate.CheckStack(st.Status, method); err != nil {
			s.writeError(w, r, fmt.Errorf("stack %s: %w", st.ID, err))
			return
		}
	}
	if err := s.credentialExists(ctx, st); err != nil {
		s.writeError(w, r, err)
		return
	}
	if method == machinestate.StackApply {
		if err := s.budgetGate(r, st.OwnerID, st.ID, "stack/"+st.ID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	job, err := s.enqueue(ctx, &jobs.Job{Kind: kind, OwnerID: st.OwnerID, Target: "stack/" + st.ID, StackID: st.ID, CredentialID: st.CredentialID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

// credentialExists refuses, at the request, a job on a stack whose
// credential was deleted (possible once the stack was destroyed): the job
// could only fail later.
func (s *Server) credentialExists(ctx context.Context, st *store.StackRecord) error {
	_, err := s.st.GetCredential(ctx, st.CredentialID)
	if errorsIsNotFound(err) {
		return conflict("credential_id", "stack %s: its credential %s was deleted; create a new stack with an existing credential", st.ID, st.CredentialID)
	}
	if err != nil {
		return fmt.Errorf("stack %s: get credential %s: %w", st.ID, st.CredentialID, err)
	}
	return nil
}
