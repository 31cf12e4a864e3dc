package kloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// viewTime is the moment machine views are computed at: now, truncated to
// the second (the unit of uptime_seconds). A list (encoded once a second,
// see listcache) and a single read made in the same second compute the
// same uptime for the same machine.
func (s *Server) viewTime() time.Time { return s.now().Truncate(time.Second) }

// machineViews turns machines into their API form at the view time; uptime
// comes with each record, so no history is read.
func (s *Server) machineViews(ms []*stack.Machine, at time.Time) []client.Machine {
	out := make([]client.Machine, 0, len(ms))
	for _, m := range ms {
		out = append(out, s.machineView(m, at))
	}
	return out
}

// machineView is one machine's API form at at: the one computation of its
// uptime and agent status, for lists and single reads alike.
func (s *Server) machineView(m *stack.Machine, at time.Time) client.Machine {
	meta := m.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	v := client.Machine{
		ID: m.ID, StackID: m.StackID, OwnerID: m.OwnerID, Label: m.Label, Provider: m.Provider,
		State: m.State, Reason: m.Reason, AlwaysOn: m.AlwaysOn, Metadata: meta,
		UptimeSeconds: int64(m.Uptime(at) / time.Second),
		Agent:         agentStatus(m, at, s.cfg.AgentTimeout),
	}
	if s.cost != nil {
		v.NextAutostart, v.NextAutostop = s.cost.scheduler.nextFirings(m, at)
	}
	if !m.LastSeen.IsZero() {
		t := m.LastSeen.UTC()
		v.LastSeen = &t
	}
	if !m.LastActivity.IsZero() {
		t := m.LastActivity.UTC()
		v.LastActivityAt = &t
	}
	return v
}

// agentStatus says whether m's agent is connected (heard from within
// timeout of at), silent (heard from before, not since) or never heard
// from. The agent of a machine that is Stopped, Terminated or not built
// does not run, so it is never connected, however recently it was heard.
func agentStatus(m *stack.Machine, at time.Time, timeout time.Duration) client.AgentStatus {
	if m.LastSeen.IsZero() {
		return client.AgentStatus{Status: client.AgentNever}
	}
	t := m.LastSeen.UTC()
	st := client.AgentStatus{Status: client.AgentConnected, LastSeenAt: &t, Version: m.AgentVersion}
	switch {
	case at.Sub(t) > timeout:
		st.Status = client.AgentSilent
	case m.State == machinestate.Stopped, m.State == machinestate.Terminated, m.State == machinestate.NotInitialized:
		st.Status = client.AgentSilent
	}
	return st
}

func (s *Server) machineFor(ctx context.Context, actor *user.User, id string) (*stack.Machine, error) {
	return owned(ctx, actor, "machine", id, s.st.GetMachine, func(m *stack.Machine) string { return m.OwnerID })
}

func (s *Server) handleListMachines(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	l, err := parseList(r, "stack_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := store.MachineFilter{OwnerID: ownerFilter(actorFrom(ctx)), StackID: l.Get("stack_id"),
		Page: store.Page{After: l.After, Limit: l.Limit}}
	body, last, err := s.lists.Get(ctx, f, s.now())
	if err == nil && last == "" {
		// The machines shared with a member follow their own, on the
		// last page.
		body, err = s.withShared(ctx, actorFrom(ctx), f.StackID, body)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if last != "" {
		setNextLink(w, r, last)
	}
	w.Header().Set("Content-Type", "application/json")
	// Its length said, the page goes out whole, not in chunks.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) handleGetMachine(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, sh, err := s.machineAccess(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.sharedView(m, sh, s.viewTime()))
}

func (s *Server) handleStartMachine(w http.ResponseWriter, r *http.Request) {
	s.machineJob(w, r, machinestate.Start, jobs.KindStart)
}

func (s *Server) handleStopMachine(w http.ResponseWriter, r *http.Request) {
	s.machineJob(w, r, machinestate.Stop, jobs.KindStop)
}

// machineJob queues a start or stop after the state table allows it.
func (s *Server) machineJob(w http.ResponseWriter, r *http.Request, method machinestate.Method, kind jobs.Kind) {
	ctx := r.Context()
	m, err := s.machineControl(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if method == machinestate.Start {
		if err := s.budgetGate(r, m.OwnerID, m.StackID, "machine/"+m.ID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	job, err := s.queueMachineJob(ctx, m, method, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

func (s *Server) queueMachineJob(ctx context.Context, m *stack.Machine, method machinestate.Method, kind jobs.Kind) (*jobs.Job, error) {
	if err := machinestate.Check(m.State, method); err != nil {
		return nil, fmt.Errorf("machine %s: %w", m.ID, err)
	}
	st, err := s.st.GetStack(ctx, m.StackID)
	if err != nil {
		return nil, fmt.Errorf("stack of machine %s: %w", m.ID, err)
	}
	if st.Status.InProgress() {
		return nil, fmt.Errorf("machine %s: its stack %s is %s; try again when it settles: %w", m.ID, st.ID, st.Status, store.ErrConflict)
	}
	return s.enqueue(ctx, &jobs.Job{Kind: kind, OwnerID: m.OwnerID, Target: "machine/" + m.ID, StackID: m.StackID, MachineID: m.ID, CredentialID: st.CredentialID})
}
