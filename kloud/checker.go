package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// reasonAgentSilent starts the reason of a machine the checker stopped
// because its agent went quiet; such a machine is Running again when its
// agent reports in.
const reasonAgentSilent = "agent silent"

// reasonIdle starts the reason of a machine the checker stopped because it
// ran past the idle limit; the stop job keeps it as the Stopped machine's
// reason.
const reasonIdle = "idle"

// Singleton leases: one replica at a time runs each of these loops.
const (
	leaseChecker = "machine-checker"
	leaseRating  = "rating-processor"
)

// holdSingleton takes or renews a singleton lease for this replica and
// remembers the answer for /healthz.
func (s *Server) holdSingleton(ctx context.Context, name string, ttl time.Duration) bool {
	_, err := s.st.AcquireLease(ctx, name, s.cfg.WorkerID, s.now(), ttl)
	held := err == nil
	if err != nil && !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
		s.log.Error("acquire singleton lease", slog.String("lease", name), slog.String("error", err.Error()))
	}
	return held
}

// singletons reports which singleton leases this replica holds now.
func (s *Server) singletons(ctx context.Context) map[string]bool {
	out := make(map[string]bool, 2)
	now := s.now()
	for _, name := range []string{leaseChecker, leaseRating} {
		l, err := s.st.GetLease(ctx, name)
		out[name] = err == nil && l.Holder == s.cfg.WorkerID && l.Expires.After(now)
	}
	return out
}

func (s *Server) checkLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = s.st.ReleaseLease(context.WithoutCancel(ctx), leaseChecker, s.cfg.WorkerID)
			return
		case <-t.C:
			if !s.holdSingleton(ctx, leaseChecker, 3*s.cfg.CheckInterval) {
				continue
			}
			if err := s.CheckMachines(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("check machines", slog.String("error", err.Error()))
			}
			if err := s.ReconcileSandbox(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("reconcile sandbox machines", slog.String("error", err.Error()))
			}
		}
	}
}

// CheckMachines marks Running machines whose agent has been silent past the
// agent timeout as Stopped (after the provider confirms it), from the
// moment the agent was last heard, and stops machines that are not
// always_on once they have run past the idle limit. A machine whose agent
// is silent but whose provider says it runs is still checked for idleness.
func (s *Server) CheckMachines(ctx context.Context) error {
	ms, err := s.st.ListMachines(ctx, store.MachineFilter{})
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	now := s.now()
	for _, m := range ms {
		if m.State != machinestate.Running {
			continue
		}
		// A machine just built or started has the agent timeout to report.
		lastSeen := m.LastSeen
		if lastSeen.IsZero() || lastSeen.Before(m.UpdatedAt) {
			lastSeen = m.UpdatedAt
		}
		if now.Sub(lastSeen) > s.cfg.AgentTimeout {
			stopped, err := s.checkSilent(ctx, m, lastSeen)
			if err != nil {
				s.log.Error("check silent machine", slog.String("machine", m.ID), slog.String("error", err.Error()))
			}
			if stopped || err != nil {
				continue
			}
		}
		if s.cfg.IdleLimit > 0 && !m.AlwaysOn {
			if err := s.checkIdle(ctx, m, now); err != nil {
				s.log.Error("check idle machine", slog.String("machine", m.ID), slog.String("error", err.Error()))
			}
		}
	}
	return nil
}

// checkSilent asks the provider about a machine whose agent went quiet and
// marks it Stopped (or what the provider reports) with the reason; it
// reports whether it did. A machine a job is working on is left alone.
func (s *Server) checkSilent(ctx context.Context, m *stack.Machine, lastSeen time.Time) (bool, error) {
	busy, err := s.targetBusy(ctx, "machine/"+m.ID)
	if err != nil || busy {
		return busy, err
	}
	drv, err := s.machineDriver(ctx, m)
	if err != nil {
		return false, err
	}
	state, meta, err := drv.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("info of machine %s: %w", m.ID, err)
	}
	if state == machinestate.Running {
		// The provider says it runs; the agent may be busy or cut off.
		s.log.Warn("machine agent silent but provider reports it running", slog.String("machine", m.ID))
		return false, nil
	}
	if err := s.saveMetadata(ctx, m, meta); err != nil {
		return false, err
	}
	reason := fmt.Sprintf("%s since %s; provider reports %s", reasonAgentSilent, lastSeen.UTC().Format(time.RFC3339), state)
	if state != machinestate.Stopped && state != machinestate.Terminated && state != machinestate.NotInitialized {
		state = machinestate.Stopped
	}
	if err := s.st.SetMachineState(ctx, m.ID, state, reason, lastSeen); err != nil {
		return false, err
	}
	return true, nil
}

// checkIdle queues a stop of a machine that has been Running past the idle
// limit. The machine's reason says why before the job starts, and the stop
// job keeps it as the Stopped machine's reason.
func (s *Server) checkIdle(ctx context.Context, m *stack.Machine, now time.Time) error {
	since := m.StateSince
	if since.IsZero() || now.Sub(since) <= s.cfg.IdleLimit {
		return nil
	}
	reason := fmt.Sprintf("%s past the limit of %s; stopped by the checker", reasonIdle, s.cfg.IdleLimit)
	if err := s.st.SetMachineState(ctx, m.ID, machinestate.Running, reason, now); err != nil {
		return err
	}
	job, err := s.queueMachineJob(ctx, m, machinestate.Stop, store.JobStop)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	s.event(ctx, job.ID, store.EventPhase, 0, fmt.Sprintf("machine %s running for %s (idle limit %s); stopping", m.ID, now.Sub(since).Round(time.Second), s.cfg.IdleLimit))
	return nil
}

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
