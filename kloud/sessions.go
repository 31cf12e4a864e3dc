package kloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
)

// SessionCookie is the name of the web dashboard's session cookie.
const SessionCookie = "kloud_session"

// sessionTTL is how long a browser session lasts after sign-in.
const sessionTTL = 12 * time.Hour

// sessionMagic starts every sealed session value, so a value sealed for
// another purpose with the same key never reads as a session.
const sessionMagic = "kloud-session/1"

// sessionKeeper seals and opens the session cookie. The cookie holds, sealed
// with AES-GCM under the data dir's secret key (store/secretbox), the
// SHA-256 of the user's token and an expiry: never the token itself, and
// nothing a client can forge or read. A sealed value rather than a session
// record in the store: every replica opens it with the key they already
// share, signing in writes nothing, and there are no expired sessions to
// clean up. The price: signing out clears the browser's cookie, but a copy
// of the cookie taken before stays valid until it expires (sessionTTL) or
// the user's token is replaced.
type sessionKeeper struct {
	dataDir string
	now     func() time.Time

	once sync.Once
	box  *secretbox.Box
	err  error
}

func newSessionKeeper(dataDir string, now func() time.Time) *sessionKeeper {
	return &sessionKeeper{dataDir: dataDir, now: now}
}

// key loads the secret key on first use: the one the store seals secrets
// with (KLOUD_SECRET_KEY, else <data-dir>/secret.key).
func (k *sessionKeeper) key() (*secretbox.Box, error) {
	k.once.Do(func() {
		k.box, k.err = secretbox.Load(k.dataDir)
		if k.err != nil {
			k.err = fmt.Errorf("load session key: %w", k.err)
		}
	})
	return k.box, k.err
}

// seal returns the cookie value for the user whose token hashes to
// tokenHash, and when it expires.
func (k *sessionKeeper) seal(tokenHash string) (string, time.Time, error) {
	box, err := k.key()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := k.now().Add(sessionTTL).Truncate(time.Second)
	sealed, err := box.Seal([]byte(sessionMagic + " " + tokenHash + " " + strconv.FormatInt(exp.Unix(), 10)))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("seal session: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), exp, nil
}

// errSession is the answer to a session cookie that is not (or no longer)
// valid: the browser must sign in again.
var errSession = fmt.Errorf("%w: the session has expired or is not valid; sign in again", ErrUnauthorized)

// open returns the token hash and expiry a cookie value holds, or
// errSession when it was altered, sealed with another key, or expired.
func (k *sessionKeeper) open(value string) (string, time.Time, error) {
	box, err := k.key()
	if err != nil {
		return "", time.Time{}, err
	}
	// A sealed session is ~150 bytes; refuse anything much larger unread.
	if len(value) > 512 {
		return "", time.Time{}, errSession
	}
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return "", time.Time{}, errSession
	}
	plain, err := box.Open(sealed)
	if err != nil {
		return "", time.Time{}, errSession
	}
	parts := strings.Split(string(plain), " ")
	if len(parts) != 3 || parts[0] != sessionMagic {
		return "", time.Time{}, errSession
	}
	unix, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", time.Time{}, errSession
	}
	exp := time.Unix(unix, 0).UTC()
	if !k.now().Before(exp) {
		return "", time.Time{}, errSession
	}
	return parts[1], exp, nil
}

// sessionAuth is how a request was authenticated, kept in its context.
type sessionAuth struct {
	method    string // "token" or "cookie"
	expiresAt time.Time
}

type sessionAuthKey struct{}

// credentialsOf returns the token hash a request carries (bearer token
// first, else the session cookie) and how it carried it. A cookie on a
// write or a WebSocket upgrade must come with this server's Origin.
func (s *Server) credentialsOf(r *http.Request) (string, sessionAuth, error) {
	if token, ok := bearer(r); ok {
		return HashToken(token), sessionAuth{method: "token"}, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", sessionAuth{}, ErrUnauthorized
	}
	hash, exp, err := s.sessions.open(c.Value)
	if err != nil {
		return "", sessionAuth{}, err
	}
	if needsOrigin(r) {
		if err := s.checkOrigin(r, true); err != nil {
			return "", sessionAuth{}, err
		}
	}
	return hash, sessionAuth{method: "cookie", expiresAt: exp}, nil
}

// needsOrigin reports whether a cookie-authenticated request must prove it
// comes from Kloud's own pages: every write, and WebSocket upgrades (which
// browsers send cross-site with cookies and no CORS check).
func needsOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	}
	return true
}

// checkOrigin refuses (403) a request whose Origin is not this server's
// own: the scheme and host the request was sent to, or those of the
// configured --url. Without an Origin header it passes only when required
// is false (a client that is not a browser).
func (s *Server) checkOrigin(r *http.Request, required bool) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if !required {
			return nil
		}
		return fmt.Errorf("%w: a cookie-authenticated %s needs an Origin header naming this server", ErrForbidden, r.Method)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) {
		return nil
	}
	if u, err := url.Parse(s.cfg.URL); err == nil && u.Host != "" && strings.EqualFold(origin, u.Scheme+"://"+u.Host) {
		return nil
	}
	return fmt.Errorf("%w: Origin %s is not this server's; cookie-authenticated requests must come from Kloud's own pages", ErrForbidden, quote(origin))
}

// secureCookies reports whether the session cookie must be Secure: the
// request came over TLS, or the server's URL is https.
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.URL, "https://")
}

// handleCreateSession signs a browser in: POST /api/v1/sessions {"token"}
// answers 204 with the session cookie.
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	// A page on another site must not sign the browser in as someone else.
	if err := s.checkOrigin(r, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req client.SessionRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	token := strings.TrimSpace(req.Token)
	if token == "" {
		s.writeError(w, r, unprocessable("token", "token is required"))
		return
	}
	hash := HashToken(token)
	u, err := s.st.GetUserByTokenHash(r.Context(), hash)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = unauthorized("token", "the token is not valid")
			s.recordAudit(r.Context(), audit.Entry{Action: "session.create", Outcome: audit.Failed("401 the token is not valid")})
		}
		s.writeError(w, r, err)
		return
	}
	value, exp, err := s.sessions.seal(hash)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.recordAudit(context.WithValue(r.Context(), actorKey{}, u), audit.Entry{Action: "session.create", Target: "user/" + u.ID, OwnerID: u.ID, Outcome: audit.OutcomeOK})
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", Expires: exp, MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// handleDeleteSession signs a browser out: the cookie is cleared.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	if err := s.checkOrigin(r, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	// Whose session ends goes in the audit log, when the cookie still says.
	if c, err := r.Cookie(SessionCookie); err == nil {
		if hash, _, err := s.sessions.open(c.Value); err == nil {
			if u, err := s.st.GetUserByTokenHash(r.Context(), hash); err == nil {
				s.recordAudit(context.WithValue(r.Context(), actorKey{}, u), audit.Entry{Action: "session.delete", Target: "user/" + u.ID, OwnerID: u.ID, Outcome: audit.OutcomeOK})
			}
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// handleGetSession answers who the caller is and how they signed in.
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) {
	u := actorFrom(r.Context())
	auth, _ := r.Context().Value(sessionAuthKey{}).(sessionAuth)
	out := client.Session{
		User:   client.User{ID: u.ID, Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt},
		Method: auth.method,
	}
	if !auth.expiresAt.IsZero() {
		t := auth.expiresAt
		out.ExpiresAt = &t
	}
	writeJSON(w, http.StatusOK, out)
}

// unauthorized returns a 401 naming field.
func unauthorized(field, format string, args ...any) error {
	return &RequestError{Status: http.StatusUnauthorized, Field: field, Message: fmt.Sprintf(format, args...)}
}
