package kloud

import (
	"context"
	"fmt"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// noState is the state backend of a plan: it starts from nothing and keeps
// nothing.
type noState struct{}

func (noState) LoadState(context.Context, string) ([]byte, error) { return nil, nil }

func (noState) SaveState(context.Context, string, int64, string, []byte) error { return nil }

// planTemplate runs a real terraform plan of t with c in a scratch working
// directory and prices the machines it would build.
func (s *Server) planTemplate(ctx context.Context, t *stack.Template, c *stack.Credential, vars map[string]string) (*client.PlanResult, error) {
	if c.Provider != t.Provider {
		return nil, unprocessable("credential_id", "credential %s is for %s but template %s is for %s", c.ID, c.Provider, t.ID, t.Provider)
	}
	if err := checkVariables(t, vars); err != nil {
		return nil, err
	}
	secret, err := stack.NewAgentSecret()
	if err != nil {
		return nil, err
	}
	key := "plan-" + string(stack.AgentToken(secret, "plan"))[:16]
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
	plan, err := s.runner.Plan(ctx, stack.Run{Key: key, Template: composed, Backend: noState{}})
	if err != nil {
		return nil, fmt.Errorf("terraform plan: %w", err)
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
