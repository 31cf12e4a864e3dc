package kloud

import (
	"net/http"

	"github.com/kloud/kloud/provider"
)

func (s *Server) handleProviders(w http.ResponseWriter, r *http.Request) {
	all := provider.All()
	out := make([]*provider.Description, 0, len(all))
	for _, p := range all {
		d, err := p.Describe()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, d)
	}
	writeJSON(w, http.StatusOK, out)
}
