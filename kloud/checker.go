package kloud

import (
	"context"

	"github.com/kloud/kloud/kloud/checker"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

// The reasons the checker gives, as the agent handler and the stop job
// read them.
const (
	reasonAgentSilent = checker.ReasonAgentSilent
	reasonIdle        = checker.ReasonIdle
)

// newChecker wires the machine checker to the server's store, providers
// and job queue.
func newChecker(s *Server) *checker.Checker {
	return checker.New(checker.Config{
		Machines:     notifyingMachines{s},
		Providers:    machineProviders{s},
		Jobs:         machineJobs{s},
		Audit:        s,
		Sandbox:      &checker.SandboxReconciler{Host: s.sandbox, Store: s.st, Log: s.log},
		AgentTimeout: s.cfg.AgentTimeout,
		IdleLimit:    s.cfg.IdleLimit,
		Leases:       s.st,
		Holder:       s.cfg.WorkerID,
		Interval:     s.cfg.CheckInterval,
		Now:          s.cfg.Now,
		Log:          s.log,
	})
}

// Checker is the server's machine checker.
func (s *Server) Checker() *checker.Checker { return s.checker }

// machineProviders asks machines' providers for the checker.
type machineProviders struct{ s *Server }

func (p machineProviders) Info(ctx context.Context, m *stack.Machine) (machinestate.State, any, error) {
	drv, err := p.s.machineDriver(ctx, m)
	if err != nil {
		return 0, nil, err
	}
	return drv.Info(ctx)
}

func (p machineProviders) SaveMetadata(ctx context.Context, m *stack.Machine, meta any) error {
	return p.s.saveMetadata(ctx, m, meta)
}

// machineJobs is the job queue as the checker uses it.
type machineJobs struct{ s *Server }

func (j machineJobs) MachineBusy(ctx context.Context, id string) (bool, error) {
	return j.s.targetBusy(ctx, "machine/"+id)
}

func (j machineJobs) QueueStop(ctx context.Context, m *stack.Machine, note string) error {
	job, err := j.s.queueMachineJob(ctx, m, machinestate.Stop, jobs.KindStop)
	if err != nil {
		return err
	}
	j.s.event(ctx, job.ID, jobs.EventPhase, 0, note)
	return nil
}
