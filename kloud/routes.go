package kloud

import (
	"net/http"
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

	m.HandleFunc("POST /api/v1/stacks", a(s.handleCreateStack))
	m.HandleFunc("GET /api/v1/stacks", a(s.handleListStacks))
	m.HandleFunc("GET /api/v1/stacks/{id}", a(s.handleGetStack))
	m.HandleFunc("POST /api/v1/stacks/{id}/apply", a(s.handleApplyStack))
	m.HandleFunc("POST /api/v1/stacks/{id}/destroy", a(s.handleDestroyStack))

	m.HandleFunc("GET /api/v1/jobs/{id}", a(s.handleGetJob))
	m.HandleFunc("GET /api/v1/jobs/{id}/events", a(s.handleJobEvents))

	m.HandleFunc("GET /api/v1/machines", a(s.handleListMachines))
	m.HandleFunc("GET /api/v1/machines/{id}", a(s.handleGetMachine))
	m.HandleFunc("POST /api/v1/machines/{id}/start", a(s.handleStartMachine))
	m.HandleFunc("POST /api/v1/machines/{id}/stop", a(s.handleStopMachine))

	m.HandleFunc("POST /api/v1/agent/register", s.handleAgentRegister)
	m.HandleFunc("POST /api/v1/agent/heartbeat", s.handleAgentHeartbeat)

	s.ratingRoutes(m)

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	s.mux = m
}
