package kloud

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
)

// machineDriver builds the provider's Machine for m.
func (s *Server) machineDriver(ctx context.Context, m *stack.Machine) (provider.Machine, error) {
	st, err := s.st.GetStack(ctx, m.StackID)
	if err != nil {
		return nil, fmt.Errorf("stack of machine %s: %w", m.ID, err)
	}
	c, err := s.st.GetCredential(ctx, st.CredentialID)
	if err != nil {
		return nil, fmt.Errorf("credential of machine %s: %w", m.ID, err)
	}
	bs, p, err := s.baseStack(c, nil, nil)
	if err != nil {
		return nil, err
	}
	return s.newDriver(p, c, bs.Cred, bs.Bootstrap, m)
}

// newDriver builds the provider's Machine for m with its decoded
// credential and metadata.
func (s *Server) newDriver(p *provider.Provider, c *stack.Credential, cred, boot any, m *stack.Machine) (provider.Machine, error) {
	bm := &provider.BaseMachine{
		Provider: p, Log: s.log.With("machine", m.ID), Machine: m,
		Credential: c, Cred: cred, Bootstrap: boot, DataDir: s.cfg.DataDir, Service: s.service(p),
	}
	meta, err := p.DecodeMetadata(m)
	if err != nil {
		return nil, fmt.Errorf("metadata of machine %s: %w", m.ID, err)
	}
	bm.Metadata = meta
	drv, err := p.Machine(bm)
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", m.ID, err)
	}
	return drv, nil
}

// saveMetadata stores what a provider reported about a machine.
func (s *Server) saveMetadata(ctx context.Context, m *stack.Machine, meta any) error {
	if meta == nil {
		return nil
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode metadata of machine %s: %w", m.ID, err)
	}
	m.Metadata = b
	m.UpdatedAt = s.now()
	return s.st.PutMachine(ctx, m)
}
