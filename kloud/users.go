package kloud

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req client.CreateUserRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, token, err := s.createUser(r, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, client.User{ID: u.ID, Name: u.Name, Role: string(u.Role), Token: token, CreatedAt: u.CreatedAt})
}

func (s *Server) createUser(r *http.Request, req client.CreateUserRequest) (*user.User, string, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 64 {
		return nil, "", unprocessable("name", "name is required (1 to 64 characters)")
	}
	role := user.Role(req.Role)
	if role == "" {
		role = user.RoleMember
	}
	if role != user.RoleAdmin && role != user.RoleMember {
		return nil, "", unprocessable("role", "role %s is not one of admin, member", quote(req.Role))
	}
	token := newToken("klu_")
	u := &user.User{Name: name, Role: role, TokenHash: HashToken(token), CreatedAt: s.now()}
	if err := s.st.CreateUser(r.Context(), u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, "", conflict("name", "user name %s is taken", quote(name))
		}
		return nil, "", fmt.Errorf("create user: %w", err)
	}
	return u, token, nil
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.st.ListUsers(r.Context())
	writeList(s, w, r, users, err, func(u *user.User) client.User {
		return client.User{ID: u.ID, Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt}
	})
}
