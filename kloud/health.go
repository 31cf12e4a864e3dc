package kloud

import (
	"net/http"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.Health{
		Status:     "ok",
		Store:      s.cfg.StoreName,
		Version:    version.Version,
		Singletons: s.singletons(r.Context()),

		Confinement: s.cfg.Confiner.String(),
		Confined:    s.cfg.Confiner.Enabled(),
	})
}
