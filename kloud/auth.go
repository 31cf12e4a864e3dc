package kloud

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// HashToken is how tokens are stored: the hex SHA-256 of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken returns a random bearer token with a prefix naming its kind.
func newToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

type actorKey struct{}

// actorFrom returns the authenticated user of a request.
func actorFrom(ctx context.Context) *user.User {
	u, _ := ctx.Value(actorKey{}).(*user.User)
	return u
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

// authenticate wraps h so that only requests with a user's token reach it:
// a bearer token, or the web dashboard's session cookie (sessions.go), which
// on a write or a WebSocket upgrade must come with this server's Origin.
func (s *Server) authenticate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hash, how, err := s.credentialsOf(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		u, err := s.users.Get(r.Context(), hash)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = ErrUnauthorized
			}
			s.writeError(w, r, err)
			return
		}
		ctx := context.WithValue(r.Context(), actorKey{}, u)
		s.audited(h)(w, r.WithContext(context.WithValue(ctx, sessionAuthKey{}, how)))
	}
}

// adminOnly wraps an authenticated handler for admins.
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return s.authenticate(func(w http.ResponseWriter, r *http.Request) {
		if !actorFrom(r.Context()).IsAdmin() {
			s.writeError(w, r, fmt.Errorf("%w: admins only", ErrForbidden))
			return
		}
		h(w, r)
	})
}

// ownerFilter is the owner a list is restricted to: none for admins.
func ownerFilter(actor *user.User) string {
	if actor.IsAdmin() {
		return ""
	}
	return actor.ID
}

// ensureAdmin makes sure an admin can log in. With a configured token, a
// user holding it exists afterwards. Without one, the first start generates
// a token, writes it to <DataDir>/admin.token (0600) and returns it so the
// command can print it once; later starts return "".
func (s *Server) ensureAdmin(ctx context.Context) (generated string, err error) {
	if s.cfg.AdminToken != "" {
		hash := HashToken(s.cfg.AdminToken)
		if _, err := s.st.GetUserByTokenHash(ctx, hash); err == nil {
			return "", nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("look up admin: %w", err)
		}
		return "", s.createAdmin(ctx, hash)
	}
	users, err := s.st.ListUsers(ctx)
	if err != nil {
		return "", fmt.Errorf("list users: %w", err)
	}
	for _, u := range users {
		if u.IsAdmin() {
			return "", nil
		}
	}
	token := newToken("kla_")
	if err := s.createAdmin(ctx, HashToken(token)); err != nil {
		return "", err
	}
	path := filepath.Join(s.cfg.DataDir, "admin.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return token, nil
}

func (s *Server) createAdmin(ctx context.Context, hash string) error {
	users, err := s.st.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	name := "admin"
	taken := make(map[string]bool, len(users))
	for _, u := range users {
		taken[u.Name] = true
	}
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("admin-%d", i)
	}
	if err := s.st.CreateUser(ctx, &user.User{Name: name, Role: user.RoleAdmin, TokenHash: hash, CreatedAt: s.now()}); err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	return nil
}

// owned returns the record get finds under id when actor may see it. A
// record of another user answers ErrNotFound, as if it did not exist.
func owned[T any](ctx context.Context, actor *user.User, kind, id string, get func(context.Context, string) (T, error), owner func(T) string) (T, error) {
	var zero T
	v, err := get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The store's own words name the id again: say it once.
		return zero, notFound(kind, id)
	case err != nil:
		return zero, fmt.Errorf("get %s %s: %w", kind, ident(id), err)
	case !actor.CanSee(owner(v)):
		return zero, notFound(kind, id)
	}
	noteAuditOwner(ctx, owner(v))
	return v, nil
}
