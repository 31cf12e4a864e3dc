package kloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

// A stack's plan job saves its plan under the job's id; applying that plan
// is a job whose id is the plan's with applySuffix. The job carries its
// plan in its id, so any replica runs it, and a plan is applied at most
// once (a second apply job of the same id is refused).
const applySuffix = "-apply"

func applyJobID(planID string) string { return planID + applySuffix }

// planOfApplyJob returns the plan an apply job applies, if it applies one.
func planOfApplyJob(jobID string) (string, bool) {
	return strings.CutSuffix(jobID, applySuffix)
}

// phaseTimings adds up how long each phase of a job took.
type phaseTimings struct {
	mu sync.Mutex
	ms map[string]time.Duration
}

func newPhaseTimings() *phaseTimings { return &phaseTimings{ms: map[string]time.Duration{}} }

func (p *phaseTimings) add(phase string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ms[phase] += d
}

// terraformPhase is a terraform.Run's Phase: show counts as plan, destroy
// as apply.
func (p *phaseTimings) terraformPhase(cmd string, d time.Duration) {
	switch cmd {
	case "show":
		cmd = "plan"
	case "destroy":
		cmd = "apply"
	}
	p.add(cmd, d)
}

func (p *phaseTimings) millis() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.ms))
	for k, d := range p.ms {
		out[k] = d.Milliseconds()
	}
	return out
}

// saveTimings keeps a job's timings, whatever became of the job.
func (s *Server) saveTimings(ctx context.Context, jobID string, t *phaseTimings) {
	if err := s.st.PutJobTimings(context.WithoutCancel(ctx), jobID, t.millis()); err != nil {
		s.log.Warn("save job timings", "job", jobID, "error", err)
	}
}

func (s *Server) handleApplyStack(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.writeError(w, r, badRequest("", "read body: %v", err))
		return
	}
	var req client.ApplyStackRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeBytes(body, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if req.PlanID == "" {
		s.stackJob(w, r, machinestate.StackApply, jobs.KindApply)
		return
	}
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.budgetGate(r, st.OwnerID, st.ID, "stack/"+st.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	job, err := s.queueSavedPlan(ctx, st, req.PlanID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

// queueSavedPlan queues the apply of a saved plan of st: 422 when the plan
// is not st's, 409 when the stack's state changed since it was made.
func (s *Server) queueSavedPlan(ctx context.Context, st *store.StackRecord, planID string) (*jobs.Job, error) {
	p, err := s.st.GetPlan(ctx, planID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.StackID != st.ID) {
		return nil, unprocessable("plan_id", "stack %s has no saved plan %s (a plan is the id of a succeeded plan job of the stack)", st.ID, quote(planID))
	}
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", st.ID, err)
	}
	if st.Status.InProgress() {
		return nil, conflict("status", "stack %s is %s; apply the plan once its job has ended", st.ID, st.Status)
	}
	if err := s.checkPlanFresh(ctx, p); err != nil {
		return nil, err
	}
	if err := s.credentialExists(ctx, st); err != nil {
		return nil, err
	}
	job, err := s.enqueue(ctx, &jobs.Job{ID: applyJobID(p.ID), Kind: jobs.KindApply, OwnerID: st.OwnerID, Target: "stack/" + st.ID, StackID: st.ID, CredentialID: st.CredentialID})
	var aje *jobs.ActiveJobError
	if errors.Is(err, store.ErrConflict) && !errors.As(err, &aje) {
		return nil, conflict("plan_id", "plan %s was already applied (job %s); plan again", p.ID, applyJobID(p.ID))
	}
	return job, err
}

// checkPlanFresh refuses (409) a plan made on another state than the
// stack's latest: another apply or a destroy ran since.
func (s *Server) checkPlanFresh(ctx context.Context, p *store.SavedPlan) error {
	serial, lineage := int64(-1), ""
	v, err := s.st.LatestStateVersion(ctx, p.StackID)
	switch {
	case err == nil:
		serial, lineage = v.Serial, v.Lineage
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("stack %s state: %w", p.StackID, err)
	}
	if serial != p.StateSerial || (p.StateLineage != "" && lineage != p.StateLineage) {
		return conflict("plan_id", "plan %s is stale: it was made on state serial %d and the stack's state is now at serial %d (an apply or destroy ran since); plan again",
			p.ID, p.StateSerial, serial)
	}
	return nil
}

func (s *Server) handlePlanStack(w http.ResponseWriter, r *http.Request) {
	s.stackCheckJob(w, r, jobs.KindPlan)
}

// stackCheckJob queues a job that reads a stack without changing it (a plan,
// a drift check): any stack not being built or destroyed.
func (s *Server) stackCheckJob(w http.ResponseWriter, r *http.Request, kind jobs.Kind) {
	ctx := r.Context()
	st, err := s.stackFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job, err := s.queueStackCheck(ctx, st, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

func (s *Server) queueStackCheck(ctx context.Context, st *store.StackRecord, kind jobs.Kind) (*jobs.Job, error) {
	if st.Status.InProgress() {
		return nil, conflict("status", "stack %s is %s; %s it once its job has ended", st.ID, st.Status, kind)
	}
	if err := s.credentialExists(ctx, st); err != nil {
		return nil, err
	}
	return s.enqueue(ctx, &jobs.Job{Kind: kind, OwnerID: st.OwnerID, Target: "stack/" + st.ID, StackID: st.ID, CredentialID: st.CredentialID})
}

// planStack is a plan job: terraform plan of the stack's pinned version and
// variables on its current state, saved (the plan file sealed) with what it
// changes and what the stack costs per hour before and after.
func (s *Server) planStack(ctx context.Context, run *jobs.Run) error {
	job := run.Job
	timings := newPhaseTimings()
	defer s.saveTimings(ctx, job.ID, timings)
	w, composed, sp, err := s.planFile(ctx, run, timings, terraform.PlanOptions{}, "running terraform plan")
	if err != nil {
		return err // the runner says "plan stack X: terraform plan: …", a failed validation included
	}
	run.Progress(ctx, 90, "pricing the plan")
	start := time.Now()
	plan, err := s.describePlan(ctx, w, composed, sp)
	if err != nil {
		return err
	}
	plan.ID, plan.StackID, plan.TemplateVersion, plan.CreatedAt = job.ID, w.stack.ID, max(w.stack.TemplateVersion, 1), s.now()
	result, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	// The result is shown to the user: every secret the job knows is
	// masked in it as in its events.
	result = []byte(run.Mask(string(result)))
	err = s.st.PutPlan(ctx, &store.SavedPlan{
		ID: job.ID, StackID: w.stack.ID, OwnerID: w.stack.OwnerID, TemplateVersion: plan.TemplateVersion,
		StateSerial: sp.StateSerial, StateLineage: sp.StateLineage, File: sp.File, Result: result, CreatedAt: plan.CreatedAt,
	})
	timings.add("record", time.Since(start))
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	run.Progress(ctx, 100, fmt.Sprintf("plan: %d to create, %d to update, %d to replace, %d to destroy",
		plan.Summary.Create, plan.Summary.Update, plan.Summary.Replace, plan.Summary.Destroy))
	return nil
}

// planFile is the Terraform part of a plan or drift job: the stack's work
// loaded, its template composed, and a plan saved to a file, every secret
// on the way masked in the job's events.
func (s *Server) planFile(ctx context.Context, run *jobs.Run, timings *phaseTimings, opts terraform.PlanOptions, what string) (*stackWork, *stack.Template, *terraform.SavedPlan, error) {
	w, err := s.loadStackWork(ctx, run.Job.StackID)
	if err != nil {
		return nil, nil, nil, err
	}
	run.Secrets.Add(w.base.Secrets()...)
	run.Secrets.Add(stackSecrets(w.stack)...)
	run.Progress(ctx, 5, "composing template")
	composed, err := s.composeTimed(ctx, w, timings)
	if err != nil {
		return nil, nil, nil, err
	}
	addEnvSecrets(run.Secrets, composed.Env, composed.ProviderEnv)
	run.Progress(ctx, 10, what)
	tokens := agentTokenMasker(w, run.Secrets)
	progress := s.outputProgress(ctx, run, composed, 10, 90, 1)
	sp, err := s.runner.PlanToFile(ctx, terraform.Run{
		Key:      w.stack.ID,
		Template: composed,
		Backend:  stateBackend{st: s.st, jobID: run.Job.ID, now: s.now},
		Output:   func(line string) { tokens(line); progress(line) },
		Phase:    timings.terraformPhase,
	}, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	return w, composed, sp, nil
}

// composeTimed composes a stack's template, counted as the compose phase.
func (s *Server) composeTimed(ctx context.Context, w *stackWork, timings *phaseTimings) (*stack.Template, error) {
	start := time.Now()
	defer func() { timings.add("compose", time.Since(start)) }()
	return s.compose(ctx, w)
}

// describePlan turns a saved plan into what the API shows: the changes,
// the machines they affect and the hourly cost before and after.
func (s *Server) describePlan(ctx context.Context, w *stackWork, composed *stack.Template, sp *terraform.SavedPlan) (*client.StackPlan, error) {
	out := &client.StackPlan{Changes: sp.Changes, StateSerial: sp.StateSerial, Resources: []client.ResourceChange{}, Machines: []client.AffectedMachine{}}
	machines, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: w.stack.ID})
	if err != nil {
		return nil, err
	}
	live := map[string]*stack.Machine{}
	var before []client.PlannedMachine
	for _, m := range machines {
		if m.State == machinestate.Terminated {
			continue
		}
		live[m.Label] = m
		var meta map[string]any
		_ = json.Unmarshal(m.Metadata, &meta)
		before = append(before, plannedMachine(m.Label, "", meta))
	}
	typ := w.provider.TerraformType()
	for _, c := range terraform.PlanChanges(sp.Plan, composed.KloudAttributes) {
		rc := client.ResourceChange{Address: c.Address, Type: c.Type, Action: c.Action}
		for _, a := range c.Changes {
			rc.Changes = append(rc.Changes, client.AttributeChange(a))
		}
		out.Resources = append(out.Resources, rc)
		switch c.Action {
		case terraform.ActionCreate:
			out.Summary.Create++
		case terraform.ActionUpdate:
			out.Summary.Update++
		case terraform.ActionReplace:
			out.Summary.Replace++
		case terraform.ActionDestroy:
			out.Summary.Destroy++
		}
		if c.Type != typ {
			continue
		}
		am := client.AffectedMachine{Label: c.Address, Action: c.Action}
		if m := live[c.Address]; m != nil {
			am.MachineID = m.ID
			var meta map[string]any
			_ = json.Unmarshal(m.Metadata, &meta)
			am.SizeFrom = firstString(meta, "size", "instance_type")
		}
		for _, a := range c.Changes {
			if a.Name == "size" || a.Name == "instance_type" {
				am.Size, _ = a.After.(string)
			}
		}
		if am.Size == "" && c.Action != terraform.ActionDestroy {
			am.Size = am.SizeFrom
		}
		out.Machines = append(out.Machines, am)
	}
	after := plannedAfter(sp, typ)
	if out.CostBefore, err = s.estimate(ctx, w.provider.Name, before); err != nil {
		return nil, fmt.Errorf("estimate cost before: %w", err)
	}
	if out.CostAfter, err = s.estimate(ctx, w.provider.Name, after); err != nil {
		return nil, fmt.Errorf("estimate cost after: %w", err)
	}
	return out, nil
}

// plannedAfter is every machine of type typ the stack has once the plan is
// applied, unchanged ones included, with its planned values.
func plannedAfter(sp *terraform.SavedPlan, typ string) []client.PlannedMachine {
	var out []client.PlannedMachine
	if sp.Plan == nil {
		return out
	}
	for _, rc := range sp.Plan.ResourceChanges {
		if rc == nil || rc.Type != typ || rc.Change == nil || rc.Change.Actions.Delete() {
			continue
		}
		after, _ := rc.Change.After.(map[string]any)
		out = append(out, plannedMachine(rc.Address, actionOf(rc.Change.Actions.Create(), rc.Change.Actions.Replace()), after))
	}
	return out
}

func actionOf(create, replace bool) string {
	switch {
	case replace:
		return terraform.ActionReplace
	case create:
		return terraform.ActionCreate
	}
	return "no-op"
}

// plannedMachine prices a machine from its attributes or metadata.
func plannedMachine(label, action string, values map[string]any) client.PlannedMachine {
	return client.PlannedMachine{
		Label: label, Action: action,
		Size:   firstString(values, "size", "instance_type"),
		Region: firstString(values, "region", "availability_zone"),
		Image:  firstString(values, "image", "ami"),
	}
}

// applySavedPlan is an apply job of a saved plan: exactly that plan file,
// refused when the stack's state moved since it was made.
func (s *Server) applySavedPlan(ctx context.Context, run *jobs.Run, planID string) error {
	p, err := s.st.GetPlan(ctx, planID)
	if err != nil {
		return fmt.Errorf("load plan %s: %w", planID, err)
	}
	if p.StackID != run.Job.StackID {
		return fmt.Errorf("plan %s is not of stack %s", planID, run.Job.StackID)
	}
	// The job holds the stack: no other job changes its state from here
	// on. A plan gone stale since it was queued leaves the stack as it is.
	if err := s.checkPlanFresh(ctx, p); err != nil {
		return err
	}
	return s.runStack(ctx, run, stackOp{verb: "apply", during: machinestate.StackBuilding, final: machinestate.StackInitialized,
		goneReason: "no longer in the stack's Terraform state", plan: p})
}
