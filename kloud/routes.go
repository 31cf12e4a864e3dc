package kloud

import (
	"net/http"
	"strings"
)

// routes wires the HTTP API; each resource's handlers live in its own file.
func (s *Server) routes() {
	m := http.NewServeMux()
	a := s.authenticate
	m.HandleFunc("GET /healthz", s.handleHealth)
	m.HandleFunc("GET /api/v1/providers", a(s.handleProviders))

	m.HandleFunc("POST /api/v1/users", s.adminOnly(s.handleCreateUser))
	m.HandleFunc("GET /api/v1/users", s.adminOnly(s.handleListUsers))

	m.HandleFunc("POST /api/v1/credentials", a(s.handleCreateCredential))
	m.HandleFunc("GET /api/v1/credentials", a(s.handleListCredentials))
	m.HandleFunc("GET /api/v1/credentials/{id}", a(s.handleGetCredential))
	m.HandleFunc("DELETE /api/v1/credentials/{id}", a(s.handleDeleteCredential))
	m.HandleFunc("POST /api/v1/credentials/{id}/verify", a(s.handleVerifyCredential))
	m.HandleFunc("POST /api/v1/credentials/{id}/bootstrap", a(s.handleBootstrap))
	m.HandleFunc("DELETE /api/v1/credentials/{id}/bootstrap", a(s.handleUnbootstrap))

	m.HandleFunc("POST /api/v1/templates", a(s.handleCreateTemplate))
	m.HandleFunc("GET /api/v1/templates", a(s.handleListTemplates))
	m.HandleFunc("GET /api/v1/templates/{id}", a(s.handleGetTemplate))
	m.HandleFunc("POST /api/v1/templates/{id}/plan", a(s.handlePlanTemplate))
	m.HandleFunc("PATCH /api/v1/templates/{id}", a(s.handleUpdateTemplate))
	m.HandleFunc("DELETE /api/v1/templates/{id}", a(s.handleDeleteTemplate))
	m.HandleFunc("POST /api/v1/templates/{id}/versions", a(s.handleCreateTemplateVersion))
	m.HandleFunc("GET /api/v1/templates/{id}/versions", a(s.handleListTemplateVersions))
	m.HandleFunc("GET /api/v1/templates/{id}/versions/{n}", a(s.handleGetTemplateVersion))

	m.HandleFunc("POST /api/v1/stacks", a(s.handleCreateStack))
	m.HandleFunc("GET /api/v1/stacks", a(s.handleListStacks))
	m.HandleFunc("GET /api/v1/stacks/{id}", a(s.handleGetStack))
	m.HandleFunc("POST /api/v1/stacks/{id}/apply", a(s.handleApplyStack))
	m.HandleFunc("POST /api/v1/stacks/{id}/destroy", a(s.handleDestroyStack))
	m.HandleFunc("PATCH /api/v1/stacks/{id}", a(s.handleUpdateStack))
	m.HandleFunc("DELETE /api/v1/stacks/{id}", a(s.handleDeleteStack))
	m.HandleFunc("GET /api/v1/stacks/{id}/jobs", a(s.handleStackJobs))
	m.HandleFunc("POST /api/v1/stacks/{id}/plan", a(s.handlePlanStack))
	m.HandleFunc("POST /api/v1/stacks/{id}/drift", a(s.handleDriftStack))

	m.HandleFunc("GET /api/v1/jobs/{id}", a(s.handleGetJob))
	m.HandleFunc("GET /api/v1/jobs/{id}/events", a(s.handleJobEvents))
	m.HandleFunc("POST /api/v1/jobs/{id}/cancel", a(s.handleCancelJob))

	m.HandleFunc("GET /api/v1/machines", a(s.handleListMachines))
	m.HandleFunc("GET /api/v1/machines/{id}", a(s.handleGetMachine))
	m.HandleFunc("POST /api/v1/machines/{id}/start", a(s.handleStartMachine))
	m.HandleFunc("POST /api/v1/machines/{id}/stop", a(s.handleStopMachine))
	m.HandleFunc("GET /api/v1/machines/{id}/terminal", a(s.handleTerminal))
	m.HandleFunc("GET /api/v1/machines/{id}/sessions", a(s.handleListSessions))
	m.HandleFunc("POST /api/v1/machines/{id}/shares", a(s.handleCreateShare))
	m.HandleFunc("GET /api/v1/machines/{id}/shares", a(s.handleListShares))
	m.HandleFunc("DELETE /api/v1/machines/{id}/shares/{user_id}", a(s.handleDeleteShare))

	m.HandleFunc("POST /api/v1/agent/register", s.handleAgentRegister)
	m.HandleFunc("POST /api/v1/agent/heartbeat", s.handleAgentHeartbeat)
	m.HandleFunc("GET /api/v1/agent/klient", s.handleKlient)
	m.HandleFunc("GET /api/v1/agent/connect", s.handleAgentConnect)

	s.ratingRoutes(m)
	s.budgetRoutes(m)
	s.scheduleRoutes(m)
	s.webhookRoutes(m)

	m.HandleFunc("GET /api/v1/audit", a(s.handleListAudit))

	s.mux = m
}

// Handler is the HTTP API. Requests no route takes get a JSON 404, or a 405
// naming the methods the path allows.
func (s *Server) Handler() http.Handler {
	return withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern != "" {
			s.mux.ServeHTTP(w, r)
			return
		}
		var allowed []string
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = method
			if _, pattern := s.mux.Handler(probe); pattern != "" {
				allowed = append(allowed, method)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " " + clipInput(r.URL.Path) + " is not allowed; allowed: " + strings.Join(allowed, ", ")})
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + clipInput(r.Method) + " " + clipInput(r.URL.Path)})
	}))
}
