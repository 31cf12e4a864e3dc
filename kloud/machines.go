package kloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// machineViews turns machines into their API form; uptime comes with each
// record, so no history is read.
func (s *Server) machineViews(ms []*stack.Machine) []client.Machine {
	now := s.now()
	out := make([]client.Machine, 0, len(ms))
	for _, m := range ms {
		out = append(out, machineView(m, m.Uptime(now)))
	}
	return out
}

func machineView(m *stack.Machine, up time.Duration) client.Machine {
	meta := m.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	v := client.Machine{
		ID: m.ID, StackID: m.StackID, OwnerID: m.OwnerID, Label: m.Label, Provider: m.Provider,
		State: m.State, Reason: m.Reason, AlwaysOn: m.AlwaysOn, Metadata: meta,
		UptimeSeconds: int64(up / time.Second),
	}
	if !m.LastSeen.IsZero() {
		t := m.LastSeen
		v.LastSeen = &t
	}
	return v
}

func (s *Server) machineFor(ctx context.Context, actor *store.User, id string) (*stack.Machine, error) {
	return owned(ctx, actor, "machine", id, s.st.GetMachine, func(m *stack.Machine) string { return m.OwnerID })
}

func (s *Server) handleListMachines(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := store.MachineFilter{OwnerID: ownerFilter(actorFrom(ctx)), StackID: r.URL.Query().Get("stack_id")}
	body, err := s.listMachinesJSON(ctx, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Server) handleGetMachine(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := s.machineFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, machineView(m, m.Uptime(s.now())))
}

func (s *Server) handleStartMachine(w http.ResponseWriter, r *http.Request) {
	s.machineJob(w, r, machinestate.Start, store.JobStart)
}

func (s *Server) handleStopMachine(w http.ResponseWriter, r *http.Request) {
	s.machineJob(w, r, machinestate.Stop, store.JobStop)
}

// machineJob queues a start or stop after the state table allows it.
func (s *Server) machineJob(w http.ResponseWriter, r *http.Request, method machinestate.Method, kind store.JobKind) {
	ctx := r.Context()
	m, err := s.machineFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job, err := s.queueMachineJob(ctx, m, method, kind)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, client.JobRef{JobID: job.ID})
}

func (s *Server) queueMachineJob(ctx context.Context, m *stack.Machine, method machinestate.Method, kind store.JobKind) (*store.Job, error) {
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
	return s.enqueue(ctx, &store.Job{Kind: kind, OwnerID: m.OwnerID, Target: "machine/" + m.ID, StackID: m.StackID, MachineID: m.ID, CredentialID: st.CredentialID})
}
