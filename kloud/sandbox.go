package kloud

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/kloud/kloud/provider"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/user"
)

// newSandboxHost starts the sandbox provider's host: the machines under
// the sandbox root, run with the server's Confiner, and the control API
// the plugin reaches on a loopback port of its own.
func (s *Server) newSandboxHost() (*sandbox.Host, error) {
	root := s.cfg.SandboxRoot
	if root == "" {
		root = filepath.Join(s.cfg.DataDir, sandbox.SubDir)
	}
	var agent []string
	if p := s.cfg.KlientPath; p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			if abs, err := filepath.Abs(p); err == nil {
				agent = []string{abs}
			}
		}
	}
	h, err := sandbox.NewHost(sandbox.HostConfig{
		Root: root, AllowedRoots: s.cfg.SandboxAllowedRoots, Confiner: s.cfg.Confiner, Agent: agent,
		Log: s.log.With(slog.String("component", "sandbox")),
	})
	if err != nil {
		return nil, err
	}
	if err := h.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return h, nil
}

// service is what the server runs for provider p on its own host.
func (s *Server) service(p *provider.Provider) any {
	if p.Name == sandbox.Name && s.sandbox != nil {
		return s.sandbox
	}
	return nil
}

// checkCredential refuses what actor may not put in a credential: a
// sandbox data_dir is an admin's, and inside the sandbox root.
func (s *Server) checkCredential(p *provider.Provider, cred any, actor *user.User) error {
	if p.Name != sandbox.Name || s.sandbox == nil {
		return nil
	}
	err := sandbox.CheckCredential(s.sandbox, cred, actor.IsAdmin())
	if errors.Is(err, sandbox.ErrAdminOnly) {
		return &RequestError{Status: http.StatusForbidden, Field: "data_dir", Message: err.Error()}
	}
	return err
}
