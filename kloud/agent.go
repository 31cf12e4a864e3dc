package kloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kloud/kloud/klient/agentapi"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// agentMachine authenticates a machine's agent by its own token, which is
// good for nothing but its own register and heartbeat.
func (s *Server) agentMachine(r *http.Request) (*stack.Machine, error) {
	token, ok := bearer(r)
	if !ok {
		return nil, ErrUnauthorized
	}
	m, err := s.st.GetMachineByAgentTokenHash(r.Context(), HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthorized
	}
	return m, err
}

func (s *Server) handleAgentRegister(w http.ResponseWriter, r *http.Request) { s.agentReport(w, r) }

func (s *Server) handleAgentHeartbeat(w http.ResponseWriter, r *http.Request) { s.agentReport(w, r) }

// agentReport records that a machine's agent was heard from, and its
// version. A machine the checker marked Stopped whose agent reports again is
// Running again, unless a job is working on it. The ack tells the agent the
// heartbeat interval this server wants.
//
// Heartbeat write cost: every agent calls every HeartbeatInterval (10 s by
// default; 10,000 machines make 1,000 calls a second). A call writes only
// the machine's narrow last-seen record (machine_agents in SQLite,
// machine_seen in Mongo; never the machine's wide row), and only when the
// stored time is older than seenGranularity or the version changed, so
// most heartbeats are a read of the row the token lookup already made. It
// never invalidates the machine list cache: a list shows last-seen times at
// most a second late, and the agent status is computed from them
// against the agent timeout, which is much coarser than either.
func (s *Server) agentReport(w http.ResponseWriter, r *http.Request) {
	m, err := s.agentMachine(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var rep agentapi.Report
	if r.ContentLength != 0 {
		if err := decode(w, r, &rep); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if len(rep.Version) > agentapi.MaxVersion {
		s.writeError(w, r, badRequest("version", "field \"version\" is longer than %d characters: %q…", agentapi.MaxVersion, rep.Version[:agentapi.MaxVersion]))
		return
	}
	ctx := r.Context()
	now := s.now()
	if now.Sub(m.LastSeen) >= s.seenGranularity() || rep.Version != m.AgentVersion || m.LastSeen.After(now) {
		if err := s.st.TouchMachine(ctx, m.ID, now, rep.Version); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := s.recordActivity(ctx, m, rep, now); err != nil {
		s.writeError(w, r, err)
		return
	}
	silenced := m.State == machinestate.Stopped && strings.HasPrefix(m.Reason, reasonAgentSilent)
	if silenced || m.State == machinestate.Unknown {
		busy, err := s.targetBusy(ctx, "machine/"+m.ID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !busy {
			if err := s.st.SetMachineState(ctx, m.ID, machinestate.Running, "agent reported in", now); err != nil {
				s.writeError(w, r, err)
				return
			}
			m.State = machinestate.Running
		}
	}
	writeJSON(w, http.StatusOK, agentapi.Ack{MachineID: m.ID, State: m.State.String(), HeartbeatSeconds: s.cfg.HeartbeatInterval.Seconds()})
}

// seenGranularity is how stale a stored last-seen time may get before a
// heartbeat rewrites it: a quarter of the agent timeout, so a connected
// agent (heard within the timeout) always reads connected while its
// heartbeats are written a few times per timeout, not on every call.
func (s *Server) seenGranularity() time.Duration { return s.cfg.AgentTimeout / 4 }

// targetBusy reports whether a queued or running job holds target.
func (s *Server) targetBusy(ctx context.Context, target string) (bool, error) {
	jobs, err := s.st.ListJobs(ctx, jobs.StatusQueued, jobs.StatusRunning)
	if err != nil {
		return false, fmt.Errorf("list active jobs: %w", err)
	}
	for _, j := range jobs {
		if j.Target == target {
			return true, nil
		}
	}
	return false, nil
}

// handleKlient serves the agent binary to machines that download it at
// first boot (cloud providers' user data). It is no secret, so it needs no
// token; only the build this server has (linux on its own architecture) is
// offered.
func (s *Server) handleKlient(w http.ResponseWriter, r *http.Request) {
	goos, arch := r.URL.Query().Get("os"), r.URL.Query().Get("arch")
	if goos == "" {
		goos = "linux"
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	if s.cfg.KlientPath == "" || goos != runtime.GOOS || arch != runtime.GOARCH {
		s.writeError(w, r, fmt.Errorf("no klient build for %s/%s on this server (it has %s/%s): %w", goos, arch, runtime.GOOS, runtime.GOARCH, store.ErrNotFound))
		return
	}
	f, err := os.Open(s.cfg.KlientPath)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("klient binary: %w", store.ErrNotFound))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="klient"`)
	http.ServeContent(w, r, "klient", time.Time{}, f)
}
