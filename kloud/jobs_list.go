package kloud

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

// handleListJobs answers GET /api/v1/jobs: the caller's jobs (an admin's:
// everyone's), newest first, of the statuses in ?status= (queued and
// running when none), narrowed by ?stack_id= and ?machine_id=, at most
// ?limit= of them.
func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r, "status", "stack_id", "machine_id")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
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
	owner := ownerFilter(actorFrom(r.Context()))
	stackID, machineID := q.Get("stack_id"), q.Get("machine_id")
	all, err := s.st.ListJobs(r.Context(), statuses...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var mine []*jobs.Job
	// The store answers oldest first: walk back for the newest.
	for _, j := range slices.Backward(all) {
		if (owner != "" && j.OwnerID != owner) || (stackID != "" && j.StackID != stackID) || (machineID != "" && j.MachineID != machineID) {
			continue
		}
		mine = append(mine, j)
	}
	// Newest first: the key sorts later creations first.
	listPage(s, w, r, q, mine, nil, func(_ int, j *jobs.Job) string {
		return fmt.Sprintf("%020d/%s", math.MaxInt64-j.CreatedAt.UnixNano(), j.ID)
	}, jobView)
}
