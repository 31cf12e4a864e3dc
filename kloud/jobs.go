package kloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/kloud/kloud/user"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
)

func jobView(j *jobs.Job) client.Job {
	v := client.Job{
		ID: j.ID, Kind: string(j.Kind), Status: string(j.Status), Percentage: j.Percentage, Error: j.Error,
		StackID: j.StackID, MachineID: j.MachineID, CredentialID: j.CredentialID, CreatedAt: j.CreatedAt,
		CancelReason: j.CancelReason,
	}
	if !j.StartedAt.IsZero() {
		t := j.StartedAt
		v.StartedAt = &t
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt
		v.FinishedAt = &t
	}
	return v
}

func eventView(e *jobs.Event) client.Event {
	return client.Event{Seq: e.Seq, At: e.At, Kind: string(e.Kind), Message: e.Message, Percentage: e.Percentage}
}

func (s *Server) jobFor(ctx context.Context, actor *user.User, id string) (*jobs.Job, error) {
	j, err := owned(ctx, actor, "job", id, s.st.GetJob, func(j *jobs.Job) string { return j.OwnerID })
	if errorsIsNotFound(err) {
		if sj := s.sharedJob(ctx, actor, id); sj != nil {
			return sj, nil
		}
	}
	return j, err
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.jobFor(r.Context(), actorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.jobDetail(r.Context(), j, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleCancelJob cancels a queued or running job (owner or admin): 200
// with the failed job when it was queued, 202 with the running job, which
// fails with the reason once stopped.
func (s *Server) handleCancelJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	j, err := s.jobFor(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if j, err = s.cancelJob(ctx, actor, j.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if j.Status.Active() {
		status = http.StatusAccepted
	}
	writeJSON(w, status, jobView(j))
}

// handleJobEvents answers a job's events as a JSON list, or with ?follow=1
// streams them as text/event-stream until the job has ended and every event
// was sent.
func (s *Server) handleJobEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	j, err := s.jobFor(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if f := r.URL.Query().Get("follow"); f == "" || f == "0" || f == "false" {
		events, err := s.st.ListEvents(ctx, j.ID, 0, 0)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]client.Event, 0, len(events))
		for _, e := range events {
			out = append(out, eventView(e))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	s.followEvents(w, r, j.ID)
}

func (s *Server) followEvents(w http.ResponseWriter, r *http.Request, jobID string) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = s.engine.Follow(r.Context(), jobID, 0, func(events []*jobs.Event) error {
		for _, e := range events {
			b, _ := json.Marshal(eventView(e))
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Kind, b); err != nil {
				return err
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
}
