package kloud

import (
	"fmt"
	"io"
	"net/http"

	"github.com/kloud/kloud/ratingbridge/writer"
)

// handleListReports lists the report files the writer pipeline made; a
// member sees only their own scope's.
func (s *Server) handleListReports(w http.ResponseWriter, r *http.Request) {
	actor := actorFrom(r.Context())
	l, err := parseList(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all, err := writer.ListReports(s.rating.ReportsDir())
	var out []writer.Report
	for _, rep := range all {
		if actor.CanSee(rep.Scope) {
			out = append(out, rep)
		}
	}
	// Reports are listed by name.
	listPage(s, w, r, l, out, err, func(_ int, rep writer.Report) string { return rep.Name }, asIs)
}

// handleGetReport downloads one report file.
func (s *Server) handleGetReport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, rep, err := writer.OpenReport(s.rating.ReportsDir(), name)
	if err != nil {
		if errorsIsNotFound(err) {
			err = notFound("report", name)
		} // otherwise the writer's error names the report already
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	if !actorFrom(r.Context()).CanSee(rep.Scope) {
		s.writeError(w, r, notFound("report", name))
		return
	}
	w.Header().Set("Content-Type", rep.ContentType())
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", rep.Name))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, f)
}
