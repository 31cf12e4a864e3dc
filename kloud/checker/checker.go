// Package checker is the machine checker: on one replica at a time it marks
// Stopped the Running machines whose agent went silent (once their
// provider confirms), queues a stop of the machines idle past the limit,
// and destroys the sandbox machines nothing knows.
package checker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kloud/kloud/kloud/singleton"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ReasonAgentSilent starts the reason of a machine the checker stopped
// because its agent went quiet; such a machine is Running again when its
// agent reports in.
const ReasonAgentSilent = "agent silent"

// ReasonIdle starts the reason of a machine the checker stopped because it
// ran past the idle limit; the stop job keeps it as the Stopped machine's
// reason.
const ReasonIdle = "idle"

// LeaseName is the singleton lease of the checker: one replica at a time
// checks.
const LeaseName = "machine-checker"

// Machines is what the checker asks of the machine records.
type Machines interface {
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
	SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error
}

// Providers asks a machine's provider about it and records what it said.
type Providers interface {
	// Info is the state and metadata m's provider reports.
	Info(ctx context.Context, m *stack.Machine) (machinestate.State, any, error)
	// SaveMetadata stores metadata the provider reported for m.
	SaveMetadata(ctx context.Context, m *stack.Machine, meta any) error
}

// Jobs is how the checker sees and queues machine jobs.
type Jobs interface {
	// MachineBusy reports whether a queued or running job holds machine id.
	MachineBusy(ctx context.Context, id string) (bool, error)
	// QueueStop queues a stop of m with note as the job's first event; it
	// fails with store.ErrConflict when a job or its stack holds m.
	QueueStop(ctx context.Context, m *stack.Machine, note string) error
}

// Auditor records the checker's actions in the audit log.
type Auditor interface {
	// RecordMachine records action on m by the system, with detail.
	RecordMachine(ctx context.Context, m *stack.Machine, action, detail string)
}

// The audit actions of the checker.
const (
	ActionAgentSilent = "machine.stop.agent_silent"
	ActionIdle        = "machine.stop.idle"
)

// Config is what a Checker needs.
type Config struct {
	Machines  Machines
	Providers Providers
	Jobs      Jobs
	// Audit, when set, records what the checker does to machines.
	Audit Auditor
	// Sandbox, when set, is reconciled after every check.
	Sandbox *SandboxReconciler
	// AgentTimeout is how long an agent may stay silent before its machine
	// is checked; IdleLimit stops a machine that is not always_on after it
	// has run that long (0: never).
	AgentTimeout time.Duration
	IdleLimit    time.Duration
	// Leases holds the checker's singleton lease, taken by Holder (this
	// replica) every Interval; Tick makes the ticks (default
	// singleton.RealTicker).
	Leases   singleton.Leases
	Holder   string
	Interval time.Duration
	Tick     singleton.Ticker
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Checker is the machine checker.
type Checker struct {
	cfg  Config
	loop *singleton.Loop
}

// New returns a checker on cfg.
func New(cfg Config) *Checker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Checker{cfg: cfg, loop: &singleton.Loop{
		Name: LeaseName, Holder: cfg.Holder, Interval: cfg.Interval,
		Leases: cfg.Leases, Now: cfg.Now, Tick: cfg.Tick, Log: cfg.Log,
	}}
}

func (c *Checker) now() time.Time { return c.cfg.Now().UTC() }

// Run checks at every tick while this replica holds the checker's lease,
// until ctx ends.
func (c *Checker) Run(ctx context.Context) { c.loop.Run(ctx, c.pass) }

// Held reports whether this replica holds the checker's lease now.
func (c *Checker) Held(ctx context.Context) bool { return c.loop.Held(ctx) }

// pass checks the machines, then reconciles the sandbox machines.
func (c *Checker) pass(ctx context.Context) error {
	if err := c.CheckMachines(ctx); err != nil && ctx.Err() == nil {
		c.cfg.Log.Error("check machines", slog.String("error", err.Error()))
	}
	if err := c.ReconcileSandbox(ctx); err != nil && ctx.Err() == nil {
		c.cfg.Log.Error("reconcile sandbox machines", slog.String("error", err.Error()))
	}
	return nil
}

// ReconcileSandbox runs the sandbox reconciler, if there is one.
func (c *Checker) ReconcileSandbox(ctx context.Context) error {
	if c.cfg.Sandbox == nil {
		return nil
	}
	return c.cfg.Sandbox.Reconcile(ctx)
}

// CheckMachines marks Running machines whose agent has been silent past the
// agent timeout as Stopped (after the provider confirms it), from the
// moment the agent was last heard, and stops machines that are not
// always_on once they have run past the idle limit. A machine whose agent
// is silent but whose provider says it runs is still checked for idleness.
func (c *Checker) CheckMachines(ctx context.Context) error {
	ms, err := c.cfg.Machines.ListMachines(ctx, store.MachineFilter{})
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	now := c.now()
	for _, m := range ms {
		if m.State != machinestate.Running {
			continue
		}
		// A machine just built or started has the agent timeout to report.
		lastSeen := m.LastSeen
		if lastSeen.IsZero() || lastSeen.Before(m.UpdatedAt) {
			lastSeen = m.UpdatedAt
		}
		if now.Sub(lastSeen) > c.cfg.AgentTimeout {
			stopped, err := c.checkSilent(ctx, m, lastSeen)
			if err != nil {
				c.cfg.Log.Error("check silent machine", slog.String("machine", m.ID), slog.String("error", err.Error()))
			}
			if stopped || err != nil {
				continue
			}
		}
		if c.cfg.IdleLimit > 0 && !m.AlwaysOn {
			if err := c.checkIdle(ctx, m, now); err != nil {
				c.cfg.Log.Error("check idle machine", slog.String("machine", m.ID), slog.String("error", err.Error()))
			}
		}
	}
	return nil
}

// checkSilent asks the provider about a machine whose agent went quiet and
// marks it Stopped (or what the provider reports) with the reason; it
// reports whether it did. A machine a job is working on is left alone.
func (c *Checker) checkSilent(ctx context.Context, m *stack.Machine, lastSeen time.Time) (bool, error) {
	busy, err := c.cfg.Jobs.MachineBusy(ctx, m.ID)
	if err != nil || busy {
		return busy, err
	}
	state, meta, err := c.cfg.Providers.Info(ctx, m)
	if err != nil {
		return false, fmt.Errorf("info of machine %s: %w", m.ID, err)
	}
	if state == machinestate.Running {
		// The provider says it runs; the agent may be busy or cut off.
		c.cfg.Log.Warn("machine agent silent but provider reports it running", slog.String("machine", m.ID))
		return false, nil
	}
	if err := c.cfg.Providers.SaveMetadata(ctx, m, meta); err != nil {
		return false, err
	}
	reason := fmt.Sprintf("%s since %s; provider reports %s", ReasonAgentSilent, lastSeen.UTC().Format(time.RFC3339), state)
	if state != machinestate.Stopped && state != machinestate.Terminated && state != machinestate.NotInitialized {
		state = machinestate.Stopped
	}
	if err := c.cfg.Machines.SetMachineState(ctx, m.ID, state, reason, lastSeen); err != nil {
		return false, err
	}
	c.audit(ctx, m, ActionAgentSilent, reason)
	return true, nil
}

// checkIdle queues a stop of a machine that has been Running past the idle
// limit. The machine's reason says why before the job starts, and the stop
// job keeps it as the Stopped machine's reason.
func (c *Checker) checkIdle(ctx context.Context, m *stack.Machine, now time.Time) error {
	// Idle since it started running or was last in use (terminal input,
	// an attached terminal, the agent's sign of work), whichever is later.
	since := m.StateSince
	if m.LastActivity.After(since) {
		since = m.LastActivity
	}
	limit := c.cfg.IdleLimit
	if since.IsZero() || now.Sub(since) <= limit {
		return nil
	}
	reason := fmt.Sprintf("%s past the limit of %s; stopped by the checker", ReasonIdle, limit)
	if err := c.cfg.Machines.SetMachineState(ctx, m.ID, machinestate.Running, reason, now); err != nil {
		return err
	}
	note := fmt.Sprintf("machine %s running for %s (idle limit %s); stopping", m.ID, now.Sub(since).Round(time.Second), limit)
	if since.Equal(m.LastActivity) {
		note = fmt.Sprintf("machine %s unused for %s, since %s (idle limit %s); stopping", m.ID, now.Sub(since).Round(time.Second), since.UTC().Format(time.RFC3339), limit)
	}
	if err := c.cfg.Jobs.QueueStop(ctx, m, note); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	c.audit(ctx, m, ActionIdle, reason)
	return nil
}

func (c *Checker) audit(ctx context.Context, m *stack.Machine, action, detail string) {
	if c.cfg.Audit != nil {
		c.cfg.Audit.RecordMachine(ctx, m, action, detail)
	}
}
