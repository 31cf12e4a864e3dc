package kloud

import (
	"net/http"

	"github.com/kloud/kloud/client"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.Health{
		Status:     "ok",
		Store:      s.cfg.StoreName,
		Version:    Version,
		Singletons: s.singletons(r.Context()),

		Confinement: s.cfg.Confiner.String(),
		Confined:    s.cfg.Confiner.Enabled(),
	})
}
