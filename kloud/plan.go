package kloud

import (
	"context"
	"fmt"
	"sync"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

// noState is the state backend of a plan: it starts from nothing and keeps
// nothing.
type noState struct{}

func (noState) LoadState(context.Context, string) ([]byte, error) { return nil, nil }

func (noState) SaveState(context.Context, string, int64, string, []byte) error { return nil }

// ownerLimit bounds how many of one owner's plans run at once on this
// replica; plans run inside their request, not as jobs.
type ownerLimit struct {
	mu      sync.Mutex
	max     int
	running map[string]int
}

func newOwnerLimit(max int) *ownerLimit {
	return &ownerLimit{max: max, running: make(map[string]int)}
}

// acquire takes a place for owner, or answers 429 when owner has max.
func (l *ownerLimit) acquire(owner string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[owner] >= l.max {
		return nil, tooManyRequests("%d template plans of yours are running (at most %d at once); retry when one has ended", l.running[owner], l.max)
	}
	l.running[owner]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.running[owner]--; l.running[owner] <= 0 {
				delete(l.running, owner)
			}
		})
	}, nil
}

// planTemplate runs a real terraform plan of t with c in a scratch working
// directory and prices the machines it would build. It is bounded like a
// job: at most MaxJobsPerOwner plans per owner at once (429 beyond), and the
// job timeout of kind "plan", past which Terraform is interrupted, then
// killed, and the plan answers 422 with the reason.
func (s *Server) planTemplate(ctx context.Context, t *stack.Template, c *stack.Credential, vars map[string]string) (*client.PlanResult, error) {
	release, err := s.plans.acquire(c.OwnerID)
	if err != nil {
		return nil, err
	}
	defer release()
	timeout := s.cfg.JobTimeout.For("plan")
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, jobs.TimedOut(timeout, "plan"))
	defer cancel()
	res, err := s.runPlan(ctx, t, c, vars)
	if stopped, ok := jobs.StopReason(ctx); ok && err != nil {
		return nil, unprocessable("", "template plan %s", stopped)
	}
	return res, err
}

func (s *Server) runPlan(ctx context.Context, t *stack.Template, c *stack.Credential, vars map[string]string) (*client.PlanResult, error) {
	if c.Provider != t.Provider {
		return nil, unprocessable("credential_id", "credential %s is for %s but template %s is for %s", c.ID, c.Provider, t.ID, t.Provider)
	}
	if _, _, err := checkVariables(t, vars); err != nil {
		return nil, err
	}
	secret, err := stack.NewAgentSecret()
	if err != nil {
		return nil, err
	}
	key := "plan-" + string(terraform.AgentToken(secret, "plan"))[:16]
	rec := &store.StackRecord{
		Stack:       stack.Stack{ID: key, OwnerID: c.OwnerID, Title: "plan of " + t.Title, TemplateID: t.ID, CredentialID: c.ID, Provider: t.Provider, Variables: vars, Status: machinestate.StackNotInitialized},
		AgentSecret: secret,
	}
	bs, p, err := s.baseStack(c, rec, t)
	if err != nil {
		return nil, err
	}
	impl, err := p.Stack(bs)
	if err != nil {
		return nil, fmt.Errorf("provider %s stack: %w", p.Name, err)
	}
	w := &stackWork{stack: rec, template: t, cred: c, base: bs, provider: p, impl: impl}
	composed, err := s.compose(ctx, w)
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.runner.RemoveWorkDir(key) }()
	plan, err := s.runner.Plan(ctx, terraform.Run{Key: key, Template: composed, Backend: noState{}})
	if err != nil {
		return nil, err // the runner says "plan stack X: terraform plan: …"
	}
	out := &client.PlanResult{Machines: []client.PlannedMachine{}}
	for _, r := range plan.Resources {
		if r.Type != p.TerraformType() {
			continue
		}
		out.Machines = append(out.Machines, client.PlannedMachine{
			Label: r.Address, Type: r.Type, Action: r.Action,
			Size:     firstString(r.Values, "size", "instance_type"),
			Region:   firstString(r.Values, "region", "availability_zone"),
			Image:    firstString(r.Values, "image", "ami"),
			AlwaysOn: r.Values["always_on"] == true,
		})
	}
	est, err := s.estimate(ctx, p.Name, out.Machines)
	if err != nil {
		return nil, fmt.Errorf("estimate cost: %w", err)
	}
	out.CostEstimate = est
	out.Budget = s.planBudget(ctx, c.OwnerID, est.Hourly)
	return out, nil
}

func firstString(values map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := values[k].(string); ok && v != "" {
			return v
		}
	}
	return ""
}
