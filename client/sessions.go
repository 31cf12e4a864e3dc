package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SessionRequest signs a browser in with a user's token.
type SessionRequest struct {
	Token string `json:"token"`
}

// Session is who the caller is and how they authenticated: "token" (a
// bearer token) or "cookie" (the web dashboard's session, which expires).
type Session struct {
	User      User       `json:"user"`
	Method    string     `json:"method"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateSession signs in with token the way the web dashboard does
// (POST /api/v1/sessions) and returns the session cookie the server set.
func (c *Client) CreateSession(ctx context.Context, token string) (*http.Cookie, error) {
	resp, err := c.send(ctx, http.MethodPost, "/api/v1/sessions", strings.NewReader(`{"token":`+strconv.Quote(token)+`}`))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == "kloud_session" {
			return ck, nil
		}
	}
	return nil, fmt.Errorf("POST /api/v1/sessions: the answer set no session cookie")
}

// DeleteSession signs out (DELETE /api/v1/sessions): the server clears the
// session cookie.
func (c *Client) DeleteSession(ctx context.Context) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/sessions", nil, nil)
}

// Session answers who the caller is (GET /api/v1/sessions).
func (c *Client) Session(ctx context.Context) (*Session, error) {
	return call[Session](ctx, c, http.MethodGet, "/api/v1/sessions", nil)
}

// SignInLink is the web dashboard's address that signs a browser in with
// token: the token travels in the fragment, which never reaches the server.
func SignInLink(baseURL, token string) string {
	return strings.TrimRight(baseURL, "/") + "/login#token=" + url.QueryEscape(token)
}

// JobQuery selects jobs: by status (queued and running when none), stack
// or machine; Limit caps the answer (newest first).
type JobQuery struct {
	Statuses  []string
	StackID   string
	MachineID string
	Limit     int
}

// Jobs lists jobs (GET /api/v1/jobs): members see their own, admins all.
func (c *Client) Jobs(ctx context.Context, q JobQuery) ([]Job, error) {
	v := url.Values{}
	if len(q.Statuses) > 0 {
		v.Set("status", strings.Join(q.Statuses, ","))
	}
	if q.StackID != "" {
		v.Set("stack_id", q.StackID)
	}
	if q.MachineID != "" {
		v.Set("machine_id", q.MachineID)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/api/v1/jobs"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	if q.Limit > 0 { // one page of the newest
		out, err := call[[]Job](ctx, c, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		return *out, nil
	}
	return list[Job](ctx, c, path)
}
