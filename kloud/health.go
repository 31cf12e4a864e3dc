package kloud

import (
	"net/http"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
	"github.com/kloud/kloud/kloud/checker"
	"github.com/kloud/kloud/kloud/rater"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.Health{
		Status:  "ok",
		Store:   s.cfg.StoreName,
		Version: version.Version,
		Singletons: map[string]bool{
			checker.LeaseName: s.checker.Held(r.Context()),
			rater.LeaseName:   s.rating.Held(r.Context()),
		},

		Confinement: s.cfg.Confiner.String(),
		Confined:    s.cfg.Confiner.Enabled(),
	})
}
