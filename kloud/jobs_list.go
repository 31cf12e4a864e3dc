package kloud

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

// Job lists answer at most maxJobList jobs, defaultJobList unless ?limit says.
const (
	defaultJobList = 100
	maxJobList     = 1000
)

// handleListJobs answers GET /api/v1/jobs: the caller's jobs (an admin's:
// everyone's), newest first, of the statuses in ?status= (queued and
// running when none), narrowed by ?stack_id= and ?machine_id=, at most
// ?limit= of them.
func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses := []jobs.Status{jobs.StatusQueued, jobs.StatusRunning}
	if v := q.Get("status"); v != "" {
		statuses = statuses[:0]
		for _, st := range strings.Split(v, ",") {
			st := jobs.Status(strings.TrimSpace(st))
			if !store.ValidJobStatus(st) {
				s.writeError(w, r, badRequest("status", "status %s is not one of queued, running, succeeded, failed", quote(string(st))))
				return
			}
			statuses = append(statuses, st)
		}
	}
	limit := defaultJobList
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxJobList {
			s.writeError(w, r, badRequest("limit", "limit %s is not a number from 1 to %d", quote(v), maxJobList))
			return
		}
		limit = n
	}
	owner := ownerFilter(actorFrom(r.Context()))
	stackID, machineID := q.Get("stack_id"), q.Get("machine_id")
	all, err := s.st.ListJobs(r.Context(), statuses...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]client.Job, 0, min(limit, len(all)))
	// The store answers oldest first: walk back for the newest.
	for _, j := range slices.Backward(all) {
		if len(out) == limit {
			break
		}
		if (owner != "" && j.OwnerID != owner) || (stackID != "" && j.StackID != stackID) || (machineID != "" && j.MachineID != machineID) {
			continue
		}
		out = append(out, jobView(j))
	}
	writeJSON(w, http.StatusOK, out)
}
