package kloud

import (
	"net/http"

	"github.com/kloud/kloud/provider"
)

func (s *Server) handleProviders(w http.ResponseWriter, r *http.Request) {
	l, err := parseList(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	all, last := pageOf(provider.All(), l, positionKey)
	out := make([]*provider.Description, 0, len(all))
	for _, p := range all {
		d, err := p.Describe()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, d)
	}
	if last != "" {
		setNextLink(w, r, last)
	}
	writeJSON(w, http.StatusOK, out)
}

// requestProvider returns the provider a request names in its "provider"
// field, or a 422 naming the field.
func requestProvider(name string) (*provider.Provider, error) {
	if name == "" {
		return nil, unprocessable("provider", "provider is required")
	}
	p, err := provider.Get(name)
	if err != nil {
		return nil, unprocessable("provider", "%v", err)
	}
	return p, nil
}
