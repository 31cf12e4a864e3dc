package kloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

func (s *Server) handleDriftStack(w http.ResponseWriter, r *http.Request) {
	s.stackCheckJob(w, r, jobs.KindDrift)
}

// runDriftChecks queues a drift check of every initialized stack without
// a queued or running job, every interval, until ctx ends.
func (s *Server) runDriftChecks(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.QueueDriftChecks(ctx); err != nil {
			s.log.Warn("queue drift checks", "error", err, "queued", n)
		}
	}
}

// QueueDriftChecks queues a drift check of every initialized stack that has
// no job queued or running, and returns how many it queued. A stack that
// got a job meanwhile (here or on another replica) is skipped.
func (s *Server) QueueDriftChecks(ctx context.Context) (int, error) {
	stacks, err := s.st.ListStacks(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list stacks: %w", err)
	}
	active, err := s.st.ListJobs(ctx, jobs.StatusQueued, jobs.StatusRunning)
	if err != nil {
		return 0, fmt.Errorf("list active jobs: %w", err)
	}
	busy := make(map[string]bool, len(active))
	for _, j := range active {
		busy[j.Target] = true
	}
	n := 0
	for _, st := range stacks {
		if st.Status != machinestate.StackInitialized || busy["stack/"+st.ID] {
			continue
		}
		_, err := s.enqueue(ctx, &jobs.Job{Kind: jobs.KindDrift, OwnerID: st.OwnerID, Target: "stack/" + st.ID, StackID: st.ID, CredentialID: st.CredentialID})
		var aje *jobs.ActiveJobError
		switch {
		case errors.As(err, &aje):
			continue
		case err != nil:
			return n, fmt.Errorf("queue drift check of stack %s: %w", st.ID, err)
		}
		n++
	}
	return n, nil
}

// checkDrift is a drift job: a refresh-only plan of the stack, whose
// resources changed outside Terraform are kept as the stack's drift. The
// state is not changed.
func (s *Server) checkDrift(ctx context.Context, run *jobs.Run) error {
	job := run.Job
	timings := newPhaseTimings()
	defer s.saveTimings(ctx, job.ID, timings)
	w, composed, sp, err := s.planFile(ctx, run, timings, terraform.PlanOptions{RefreshOnly: true}, "refreshing the stack's resources")
	if err != nil {
		return err
	}
	start := time.Now()
	ignore := slices.Concat(composed.KloudAttributes, w.provider.ObservedAttributes)
	d := &store.Drift{StackID: w.stack.ID, CheckedAt: s.now(), Resources: []store.DriftedResource{}}
	for _, c := range terraform.PlanDrift(sp.Plan, ignore) {
		dr := store.DriftedResource{Address: c.Address, Type: c.Type, Action: c.Action}
		for _, a := range c.Changes {
			dr.Changed = append(dr.Changed, a.Name)
		}
		d.Resources = append(d.Resources, dr)
	}
	err = s.st.PutDrift(ctx, d)
	timings.add("record", time.Since(start))
	if err != nil {
		return fmt.Errorf("save drift of stack %s: %w", w.stack.ID, err)
	}
	msg := "no drift"
	if len(d.Resources) > 0 {
		msg = fmt.Sprintf("drifted: %d resources changed outside Kloud", len(d.Resources))
		addrs := make([]string, 0, len(d.Resources))
		for _, r := range d.Resources {
			addrs = append(addrs, r.Address)
		}
		s.StackDrifted(ctx, w.stack, addrs)
	}
	run.Progress(ctx, 100, msg)
	return nil
}

// clearDrift forgets the drift a check found once an apply or destroy has
// run: Terraform refreshed every resource and made them match. A stack
// never checked stays so.
func (s *Server) clearDrift(ctx context.Context, stackID string) {
	d, err := s.st.GetDrift(ctx, stackID)
	if err != nil || len(d.Resources) == 0 {
		return
	}
	if err := s.st.PutDrift(ctx, &store.Drift{StackID: stackID, CheckedAt: s.now(), Resources: []store.DriftedResource{}}); err != nil {
		s.log.Warn("clear drift", "stack", stackID, "error", err)
	}
}
