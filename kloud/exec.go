package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

// execute runs a claimed job's work: the job engine's executor.
func (s *Server) execute(ctx context.Context, run *jobs.Run) error {
	job := run.Job
	switch job.Kind {
	case jobs.KindApply:
		if planID, ok := planOfApplyJob(job.ID); ok {
			return s.applySavedPlan(ctx, run, planID)
		}
		return s.applyStack(ctx, run)
	case jobs.KindPlan:
		return s.planStack(ctx, run)
	case jobs.KindDrift:
		return s.checkDrift(ctx, run)
	case jobs.KindDestroy:
		return s.destroyStack(ctx, run)
	case jobs.KindBootstrap:
		return s.bootstrap(ctx, run, false)
	case jobs.KindUnbootstrap:
		return s.bootstrap(ctx, run, true)
	case jobs.KindStart:
		return s.machineMethod(ctx, run, machinestate.Start)
	case jobs.KindStop:
		return s.machineMethod(ctx, run, machinestate.Stop)
	}
	return fmt.Errorf("job %s: unknown kind %q", job.ID, job.Kind)
}

// stateBackend keeps Terraform states as store state versions.
type stateBackend struct {
	st    store.StateVersions
	jobID string
	now   func() time.Time
}

func (b stateBackend) LoadState(ctx context.Context, key string) ([]byte, error) {
	v, err := b.st.LatestStateVersion(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return v.State, nil
}

func (b stateBackend) SaveState(ctx context.Context, key string, serial int64, lineage string, state []byte) error {
	return b.st.PutStateVersion(ctx, &store.StateVersion{StackID: key, Serial: serial, Lineage: lineage, JobID: b.jobID, State: state, CreatedAt: b.now()})
}

// stackWork is everything a stack job needs, loaded once.
type stackWork struct {
	stack    *store.StackRecord
	template *stack.Template
	cred     *stack.Credential
	base     *provider.BaseStack
	provider *provider.Provider
	impl     provider.Stack
}

func (s *Server) loadStackWork(ctx context.Context, stackID string) (*stackWork, error) {
	return s.loadStackWorkAt(ctx, stackID, 0)
}

// loadStackWorkAt loads a stack's work with version of its template (0:
// the version the stack pins), its secret variables among its variables.
func (s *Server) loadStackWorkAt(ctx context.Context, stackID string, version int) (*stackWork, error) {
	st, err := s.st.GetStack(ctx, stackID)
	if err != nil {
		return nil, fmt.Errorf("load stack %s: %w", stackID, err)
	}
	t, err := s.st.GetTemplate(ctx, st.TemplateID)
	if err != nil {
		return nil, fmt.Errorf("load template of stack %s: %w", stackID, err)
	}
	if version == 0 {
		version = max(st.TemplateVersion, 1)
	}
	v, err := s.templateVersion(ctx, t, version)
	if err != nil {
		return nil, fmt.Errorf("load template of stack %s: %w", stackID, err)
	}
	t = versionTemplate(t, v)
	c, err := s.st.GetCredential(ctx, st.CredentialID)
	if err != nil {
		return nil, fmt.Errorf("load credential of stack %s: %w", stackID, err)
	}
	bs, p, err := s.baseStack(c, st, t)
	if err != nil {
		return nil, err
	}
	bs.Stack.Variables = allVariables(st)
	impl, err := p.Stack(bs)
	if err != nil {
		return nil, fmt.Errorf("provider %s stack: %w", p.Name, err)
	}
	return &stackWork{stack: st, template: t, cred: c, base: bs, provider: p, impl: impl}, nil
}

// compose asks the provider for the runnable template.
func (s *Server) compose(ctx context.Context, w *stackWork) (*stack.Template, error) {
	composed, err := w.impl.ApplyTemplate(ctx, w.cred)
	if err != nil {
		return nil, fmt.Errorf("compose template: %w", w.base.MaskError(err))
	}
	return composed, nil
}

// outputProgress returns the Output callback of a Terraform run: every line
// becomes one event, an output event or, for a finished resource, a
// progress event that moves the percentage from lo towards hi (never both,
// so a follower reads each line once). Plan lines of Kloud's own
// attributes (t.KloudAttributes) are dropped: the user did not write them.
func (s *Server) outputProgress(ctx context.Context, run *jobs.Run, t *stack.Template, lo, hi, expected int) func(string) {
	done := 0
	return func(line string) {
		if kloudAttributeLine(line, t.KloudAttributes) {
			return
		}
		if strings.Contains(line, "complete after") || strings.Contains(line, "Creation complete") || strings.Contains(line, "Destruction complete") {
			done++
			total := max(expected, done+1)
			run.Progress(ctx, lo+(hi-lo)*done/total, line)
			return
		}
		run.Output(line)
	}
}

// kloudAttributeLine reports whether line is a plan line setting one of
// attrs, such as `      + kloud_url   = "http://…"` or
// `      ~ agent_token = (sensitive value)`.
func kloudAttributeLine(line string, attrs []string) bool {
	if len(attrs) == 0 {
		return false
	}
	l := strings.TrimLeft(line, " ")
	for _, action := range []string{"-/+ ", "+/- ", "+ ", "- ", "~ "} {
		if strings.HasPrefix(l, action) {
			l = l[len(action):]
			break
		}
	}
	name, rest, ok := strings.Cut(l, " ")
	if !ok || !strings.HasPrefix(strings.TrimLeft(rest, " "), "=") {
		return false
	}
	for _, a := range attrs {
		if name == a {
			return true
		}
	}
	return false
}

// stackOp is what an apply or a destroy does differently.
type stackOp struct {
	verb          string                  // "apply", "destroy"
	during, final machinestate.StackState // the stack's status while it runs and after
	goneReason    string                  // why a machine no longer in the state is Terminated
	run           func(context.Context, terraform.Run) (*terraform.ApplyResult, error)
	// plan, when set, is the saved plan an apply runs, and version the
	// template version it was made with.
	plan *store.SavedPlan
}

func (s *Server) applyStack(ctx context.Context, run *jobs.Run) error {
	return s.runStack(ctx, run, stackOp{verb: "apply", during: machinestate.StackBuilding, final: machinestate.StackInitialized,
		goneReason: "no longer in the stack's Terraform state", run: s.runner.Apply})
}

func (s *Server) destroyStack(ctx context.Context, run *jobs.Run) error {
	return s.runStack(ctx, run, stackOp{verb: "destroy", during: machinestate.StackDestroying, final: machinestate.StackDestroyed,
		goneReason: "destroyed with the stack", run: s.runner.Destroy})
}

// runStack runs Terraform for a stack job: status in progress, the
// provider's composition, the run with its output as events and progress,
// then the machines recorded from whatever state the run saved, failed or
// not. A failure leaves the stack not_initialized with the reason.
func (s *Server) runStack(ctx context.Context, run *jobs.Run, op stackOp) error {
	job := run.Job
	version := 0
	if op.plan != nil {
		version = op.plan.TemplateVersion
	}
	w, err := s.loadStackWorkAt(ctx, job.StackID, version)
	if err != nil {
		return err
	}
	run.Secrets.Add(w.base.Secrets()...)
	run.Secrets.Add(stackSecrets(w.stack)...)
	timings := newPhaseTimings()
	defer s.saveTimings(ctx, job.ID, timings)
	fail := func(err error) error {
		reason := run.Mask(err.Error())
		if stopped, ok := jobs.StopReason(ctx); ok {
			reason = stopped
		}
		_ = s.st.SetStackStatus(context.WithoutCancel(ctx), w.stack.ID, machinestate.StackNotInitialized, reason, s.now())
		return err
	}
	if err := s.st.SetStackStatus(ctx, w.stack.ID, op.during, "", s.now()); err != nil {
		return err
	}
	run.Progress(ctx, 5, "composing template")
	composed, err := s.composeTimed(ctx, w, timings)
	if err != nil {
		return fail(err)
	}
	addEnvSecrets(run.Secrets, composed.Env, composed.ProviderEnv)
	expected := resourceCount(composed)
	if op.final == machinestate.StackDestroyed {
		machines, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: w.stack.ID})
		if err != nil {
			return fail(err)
		}
		for _, m := range machines {
			if m.State != machinestate.Terminated {
				if err := s.st.SetMachineState(ctx, m.ID, machinestate.Terminating, "stack destroy", s.now()); err != nil {
					return fail(err)
				}
			}
		}
		expected = len(machines)
	}
	run.Progress(ctx, 10, "running terraform "+op.verb)
	tokens := agentTokenMasker(w, run.Secrets)
	progress := s.outputProgress(ctx, run, composed, 10, 90, expected)
	tfRun := terraform.Run{
		Key:      w.stack.ID,
		Template: composed,
		Backend:  stateBackend{st: s.st, jobID: job.ID, now: s.now},
		Output:   func(line string) { tokens(line); progress(line) },
		Phase:    timings.terraformPhase,
	}
	var (
		res    *terraform.ApplyResult
		runErr error
	)
	if op.plan != nil {
		res, runErr = s.runner.ApplyPlanFile(ctx, tfRun, op.plan.File)
	} else {
		res, runErr = op.run(ctx, tfRun)
	}
	if res != nil {
		run.Progress(ctx, 90, "recording machines")
		recordStart := time.Now()
		err := s.syncMachines(context.WithoutCancel(ctx), w, res.Resources, op.goneReason)
		timings.add("record", time.Since(recordStart))
		if err != nil {
			return fail(errors.Join(runErr, err))
		}
	}
	if runErr != nil {
		return fail(runErr) // the runner says "apply stack X: terraform apply: …"
	}
	if err := s.st.SetStackStatus(ctx, w.stack.ID, op.final, "", s.now()); err != nil {
		return err
	}
	s.clearDrift(ctx, w.stack.ID)
	run.Progress(ctx, 100, "stack "+string(op.final))
	return nil
}

// resourceCount estimates how many resources an apply creates, for progress.
func resourceCount(t *stack.Template) int {
	parsed, _ := terraform.ParseTemplate(t.FileName(), []byte(t.Content), t.Format)
	if parsed == nil {
		return 1
	}
	return max(1, len(parsed.Resources))
}

// syncMachines makes the stack's machine records match the machines in the
// Terraform state: new ones are created, present ones updated with their
// metadata and real state (providers are asked in parallel), and those
// gone are Terminated with goneReason.
func (s *Server) syncMachines(ctx context.Context, w *stackWork, resources []terraform.StateResource, goneReason string) error {
	existing, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: w.stack.ID})
	if err != nil {
		return err
	}
	byLabel := make(map[string]*stack.Machine, len(existing))
	for _, m := range existing {
		// A replaced machine's terminated record shares its label with
		// its successor: the live one wins.
		if prev := byLabel[m.Label]; prev == nil || prev.State == machinestate.Terminated {
			byLabel[m.Label] = m
		}
	}
	machines := terraform.ResourcesOfType(resources, w.provider.TerraformType())
	if err := s.retireReplaced(ctx, byLabel, machines); err != nil {
		return err
	}
	synced := make([]machineSync, len(machines))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, r := range machines {
		g.Go(func() error {
			ms, err := s.inspectMachine(gctx, w, byLabel[r.Address], r)
			synced[i] = ms
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	seen := make(map[string]bool, len(synced))
	for _, ms := range synced {
		seen[ms.m.Label] = true
		if err := s.recordMachine(ctx, ms); err != nil {
			return err
		}
	}
	for _, m := range existing {
		if !seen[m.Label] && m.State != machinestate.Terminated {
			if err := s.st.SetMachineState(ctx, m.ID, machinestate.Terminated, goneReason, s.now()); err != nil {
				return err
			}
		}
	}
	return nil
}

// retireReplaced ends the records of machines Terraform replaced (the
// resource at their label is another object now): each is Terminated at
// the replacement, keeps its history and bill, and gives up its agent
// token and its label to a new record that inspectMachine creates.
func (s *Server) retireReplaced(ctx context.Context, byLabel map[string]*stack.Machine, resources []terraform.StateResource) error {
	for _, r := range resources {
		m := byLabel[r.Address]
		if m == nil || m.State == machinestate.Terminated {
			continue
		}
		newID, _ := r.Values["id"].(string)
		var meta struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(m.Metadata, &meta)
		if newID == "" || meta.ID == "" || newID == meta.ID {
			continue
		}
		if err := s.st.SetMachineState(ctx, m.ID, machinestate.Terminated, "replaced by "+newID, s.now()); err != nil {
			return fmt.Errorf("retire replaced machine %s: %w", m.ID, err)
		}
		m.AgentTokenHash, m.UpdatedAt = "", s.now()
		if err := s.st.PutMachine(ctx, m); err != nil {
			return fmt.Errorf("retire replaced machine %s: %w", m.ID, err)
		}
		delete(byLabel, r.Address)
	}
	return nil
}

// machineSync is what an apply learnt of one machine.
type machineSync struct {
	m      *stack.Machine
	isNew  bool
	state  machinestate.State
	reason string
}

// inspectMachine fills a machine record from its Terraform state and asks
// the provider for its real state; it writes nothing.
func (s *Server) inspectMachine(ctx context.Context, w *stackWork, m *stack.Machine, r terraform.StateResource) (machineSync, error) {
	now := s.now()
	ms := machineSync{isNew: m == nil || m.State == machinestate.Terminated, state: machinestate.Running, reason: "applied"}
	if m == nil {
		m = &stack.Machine{StackID: w.stack.ID, OwnerID: w.stack.OwnerID, Provider: w.provider.Name, Label: r.Address, CreatedAt: now}
	}
	if ms.isNew {
		ms.reason = "built"
	}
	ms.m = m
	if v, ok := r.Values["always_on"].(bool); ok {
		m.AlwaysOn = v
	}
	m.AgentTokenHash = stack.HashAgentToken(terraform.AgentToken(w.stack.AgentSecret, r.Address).Reveal())
	m.UpdatedAt = now
	if w.provider.Schema.NewMetadata != nil {
		meta := w.provider.Schema.NewMetadata(m)
		b, err := json.Marshal(r.Values)
		if err != nil {
			return ms, fmt.Errorf("encode state of %s: %w", r.Address, err)
		}
		if err := json.Unmarshal(b, meta); err != nil {
			return ms, fmt.Errorf("read metadata of %s: %w", r.Address, err)
		}
		if m.Metadata, err = json.Marshal(meta); err != nil {
			return ms, fmt.Errorf("encode metadata of %s: %w", r.Address, err)
		}
	}
	drv, err := s.newDriver(w.provider, w.cred, w.base.Cred, w.base.Bootstrap, m)
	if err != nil {
		return ms, err
	}
	state, meta, err := drv.Info(ctx)
	if err != nil {
		ms.state, ms.reason = machinestate.Unknown, "provider info failed: "+w.base.Mask(err.Error())
		return ms, nil
	}
	ms.state = state
	if meta != nil {
		if m.Metadata, err = json.Marshal(meta); err != nil {
			return ms, fmt.Errorf("encode metadata of %s: %w", r.Address, err)
		}
	}
	return ms, nil
}

// recordMachine stores what inspectMachine learnt.
func (s *Server) recordMachine(ctx context.Context, ms machineSync) error {
	m := ms.m
	if m.ID == "" {
		// A new record starts its history in the state the provider reports.
		m.State, m.Reason, m.CreatedAt = ms.state, ms.reason, s.now()
		if err := s.st.PutMachine(ctx, m); err != nil {
			return fmt.Errorf("record machine %s: %w", m.Label, err)
		}
		return nil
	}
	if err := s.st.PutMachine(ctx, m); err != nil {
		return fmt.Errorf("record machine %s: %w", m.Label, err)
	}
	if ms.state == m.State && !ms.isNew {
		return nil
	}
	return s.st.SetMachineState(ctx, m.ID, ms.state, ms.reason, s.now())
}

// bootstrap applies (or destroys) a credential's bootstrap templates and
// stores their outputs with the credential.
func (s *Server) bootstrap(ctx context.Context, run *jobs.Run, destroy bool) error {
	job := run.Job
	c, err := s.st.GetCredential(ctx, job.CredentialID)
	if err != nil {
		return fmt.Errorf("load credential %s: %w", job.CredentialID, err)
	}
	bs, p, err := s.baseStack(c, nil, nil)
	if err != nil {
		return err
	}
	impl, err := p.Stack(bs)
	if err != nil {
		return fmt.Errorf("provider %s stack: %w", p.Name, err)
	}
	run.Secrets.Add(bs.Secrets()...)
	run.Progress(ctx, 5, "composing bootstrap templates")
	templates, err := impl.BootstrapTemplates(ctx, c)
	if err != nil {
		return fmt.Errorf("bootstrap templates: %w", bs.MaskError(err))
	}
	outputs := make(map[string]json.RawMessage)
	for i, t := range templates {
		addEnvSecrets(run.Secrets, t.Env, t.ProviderEnv)
		run := terraform.Run{
			Key:      fmt.Sprintf("bootstrap-%s-%d", c.ID, i),
			Template: t,
			Backend:  stateBackend{st: s.st, jobID: job.ID, now: s.now},
			Output:   s.outputProgress(ctx, run, t, 10+80*i/len(templates), 10+80*(i+1)/len(templates), 1),
		}
		if destroy {
			if _, err := s.runner.Destroy(ctx, run); err != nil {
				return fmt.Errorf("destroy bootstrap: %w", err)
			}
			continue
		}
		res, err := s.runner.Apply(ctx, run)
		if err != nil {
			return fmt.Errorf("apply bootstrap: %w", err)
		}
		for k, v := range res.Outputs {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("encode bootstrap output %s: %w", k, err)
			}
			outputs[k] = b
		}
	}
	if destroy {
		c.Bootstrap, c.Bootstrapped = nil, false
	} else {
		_, b, err := p.DecodeBootstrapOutputs(outputs)
		if err != nil {
			return err
		}
		c.Bootstrap, c.Bootstrapped = b, true
	}
	c.UpdatedAt = s.now()
	if err := s.st.UpdateCredential(ctx, c); err != nil {
		return fmt.Errorf("save bootstrap of credential %s: %w", c.ID, err)
	}
	run.Progress(ctx, 100, "bootstrap done")
	return nil
}

// machineMethod starts or stops one machine through its provider, moving
// its state through the method's transition.
func (s *Server) machineMethod(ctx context.Context, run *jobs.Run, method machinestate.Method) error {
	job := run.Job
	m, err := s.st.GetMachine(ctx, job.MachineID)
	if err != nil {
		return fmt.Errorf("load machine %s: %w", job.MachineID, err)
	}
	if err := machinestate.Check(m.State, method); err != nil {
		return fmt.Errorf("machine %s: %w", m.ID, err)
	}
	tr, _ := machinestate.TransitionOf(method)
	// A stop or start automation asked for keeps its reason (idle past
	// the limit, budget exhausted, schedule).
	final := keptReason(method, m.Reason)
	drv, err := s.machineDriver(ctx, m)
	if err != nil {
		return err
	}
	if err := s.st.SetMachineState(ctx, m.ID, tr.Start, string(method)+" requested", s.now()); err != nil {
		return err
	}
	run.Progress(ctx, 10, fmt.Sprintf("machine %s is %s", m.Label, tr.Start))
	var meta any
	switch method {
	case machinestate.Start:
		meta, err = drv.Start(ctx)
	case machinestate.Stop:
		meta, err = drv.Stop(ctx)
	default:
		err = fmt.Errorf("method %s is not run as a job", method)
	}
	if err != nil {
		msg := run.Mask(err.Error())
		_ = s.st.SetMachineState(context.WithoutCancel(ctx), m.ID, tr.Failure, string(method)+" failed: "+msg, s.now())
		return fmt.Errorf("%s machine %s: %s", method, m.ID, msg)
	}
	if err := s.saveMetadata(ctx, m, meta); err != nil {
		return err
	}
	if err := s.st.SetMachineState(ctx, m.ID, tr.Final, final, s.now()); err != nil {
		return err
	}
	run.Progress(ctx, 100, fmt.Sprintf("machine %s is %s", m.Label, tr.Final))
	if method == machinestate.Stop {
		s.machineStopped(ctx, m, final)
	}
	return nil
}

// recoverTarget puts the stack or machine a dead worker's job held back in a
// state that allows trying again.
func (s *Server) recoverTarget(ctx context.Context, j *jobs.Job, reason string) {
	// Failing the job freed its target: a newer job may already hold it,
	// and then the target is that job's to set, not ours.
	if busy, err := s.targetBusy(ctx, j.Target); err != nil || busy {
		return
	}
	switch j.Kind {
	case jobs.KindApply, jobs.KindDestroy:
		if err := s.st.SetStackStatus(ctx, j.StackID, machinestate.StackNotInitialized, reason, s.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("recover stack", "stack", j.StackID, "error", err)
		}
		ms, err := s.st.ListMachines(ctx, store.MachineFilter{StackID: j.StackID})
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.State.InProgress() {
				_ = s.st.SetMachineState(ctx, m.ID, machinestate.Unknown, reason, s.now())
			}
		}
	case jobs.KindStart, jobs.KindStop:
		m, err := s.st.GetMachine(ctx, j.MachineID)
		if err == nil && m.State.InProgress() {
			_ = s.st.SetMachineState(ctx, m.ID, machinestate.Unknown, reason, s.now())
		}
	}
}

// addEnvSecrets adds the values of a template's secret variables to a
// job's secrets.
func addEnvSecrets(m *secretmask.Masker, envs ...map[string]stack.Secret) {
	for _, env := range envs {
		for _, v := range env {
			m.Add(v.Reveal())
		}
	}
}

// agentTokenMasker returns a function that, given a line of Terraform's
// output, adds to secrets the agent token of every machine of the stack the
// line names, before the line is recorded. A template may print a machine's
// token through nonsensitive(); Terraform names each machine ("# <address>
// will be created", "<address>: Creating...") before it prints the
// outputs, so the token is masked by then.
func agentTokenMasker(w *stackWork, secrets *secretmask.Masker) func(line string) {
	addrPattern := regexp.MustCompile(regexp.QuoteMeta(w.provider.TerraformType()) + `\.[A-Za-z_][A-Za-z0-9_-]*(\[[^\]]{0,256}\])?`)
	seen := make(map[string]bool)
	return func(line string) {
		for _, addr := range addrPattern.FindAllString(line, 8) {
			if seen[addr] || len(seen) >= 100000 {
				continue
			}
			seen[addr] = true
			secrets.Add(terraform.AgentToken(w.stack.AgentSecret, addr).Reveal())
		}
	}
}
