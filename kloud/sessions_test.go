package kloud_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestSessions signs a browser in with a token and checks what the cookie
// allows: reads, same-origin writes, and nothing from another site.
func TestSessions(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) { c.Now = clock.Now })
	ctx := context.Background()
	own := h.URL

	cookie, err := h.Admin.CreateSession(ctx, h.AdminToken)
	if err != nil {
		t.Fatalf("create session: %v", err)
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure || cookie.Path != "/" {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path=/", cookie)
	}
	if strings.Contains(cookie.Value, h.AdminToken) || strings.Contains(cookie.Value, kloud.HashToken(h.AdminToken)) {
		t.Error("the session cookie carries the token or its hash in clear")
	}

	do := func(method, path, origin string, ck *http.Cookie, hdr map[string]string, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, h.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tampered := *cookie
	mid := len(cookie.Value) / 2
	flip := map[byte]byte{'A': 'B'}[cookie.Value[mid]]
	if flip == 0 {
		flip = 'A'
	}
	tampered.Value = cookie.Value[:mid] + string(flip) + cookie.Value[mid+1:]
	garbage := &http.Cookie{Name: kloud.SessionCookie, Value: strings.Repeat("x", 4096)}
	bearer := map[string]string{"Authorization": "Bearer " + h.AdminToken}
	upgrade := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}
	cred := `{"provider":"sandbox","title":"web","data":{}}`

	for _, tc := range []struct {
		name                 string
		method, path, origin string
		cookie               *http.Cookie
		hdr                  map[string]string
		body                 string
		want                 int
		wantIn               string
	}{
		{name: "who am I by cookie", method: "GET", path: "/api/v1/sessions", cookie: cookie, want: 200, wantIn: `"method":"cookie"`},
		{name: "who am I by token", method: "GET", path: "/api/v1/sessions", hdr: bearer, want: 200, wantIn: `"method":"token"`},
		{name: "read by cookie", method: "GET", path: "/api/v1/credentials", cookie: cookie, want: 200},
		{name: "event stream by cookie", method: "GET", path: "/api/v1/machines", cookie: cookie, hdr: map[string]string{"Accept": "text/event-stream"}, want: 200},
		{name: "write by cookie without Origin", method: "POST", path: "/api/v1/credentials", cookie: cookie, body: cred, want: 403, wantIn: "Origin"},
		{name: "write by cookie from another site", method: "POST", path: "/api/v1/credentials", origin: "https://evil.example", cookie: cookie, body: cred, want: 403, wantIn: "evil.example"},
		{name: "write by cookie from Kloud's page", method: "POST", path: "/api/v1/credentials", origin: own, cookie: cookie, body: cred, want: 201},
		{name: "upgrade by cookie from another site", method: "GET", path: "/api/v1/machines", origin: "http://evil.example", cookie: cookie, hdr: upgrade, want: 403},
		{name: "upgrade by cookie without Origin", method: "GET", path: "/api/v1/machines", cookie: cookie, hdr: upgrade, want: 403},
		{name: "write by token from another site", method: "POST", path: "/api/v1/credentials", origin: "https://evil.example", hdr: bearer, body: cred, want: 201},
		{name: "tampered cookie", method: "GET", path: "/api/v1/credentials", cookie: &tampered, want: 401, wantIn: "sign in again"},
		{name: "oversized cookie", method: "GET", path: "/api/v1/credentials", cookie: garbage, want: 401},
		{name: "no cookie, no token", method: "GET", path: "/api/v1/credentials", want: 401},
		{name: "sign in with a wrong token", method: "POST", path: "/api/v1/sessions", body: `{"token":"kla_nope"}`, want: 401, wantIn: `"field":"token"`},
		{name: "sign in without a token", method: "POST", path: "/api/v1/sessions", body: `{"token":" "}`, want: 422, wantIn: `"field":"token"`},
		{name: "sign in with a bad body", method: "POST", path: "/api/v1/sessions", body: `{"tok":1}`, want: 400},
		{name: "sign in from another site", method: "POST", path: "/api/v1/sessions", origin: "https://evil.example", body: `{"token":"` + h.AdminToken + `"}`, want: 403},
		{name: "sign out from another site", method: "DELETE", path: "/api/v1/sessions", origin: "https://evil.example", want: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body := do(tc.method, tc.path, tc.origin, tc.cookie, tc.hdr, tc.body)
			if got != tc.want || !strings.Contains(body, tc.wantIn) {
				t.Errorf("%s %s = %d %s, want %d with %q", tc.method, tc.path, got, body, tc.want, tc.wantIn)
			}
		})
	}

	// The session names the user and when it ends.
	var s client.Session
	if _, body := do("GET", "/api/v1/sessions", "", cookie, nil, ""); json.Unmarshal([]byte(body), &s) != nil || s.User.Role != "admin" || s.ExpiresAt == nil {
		t.Errorf("session = %s", body)
	}

	// Sign out clears the cookie.
	req, _ := http.NewRequestWithContext(ctx, "DELETE", h.URL+"/api/v1/sessions", nil)
	req.Header.Set("Origin", own)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != 204 || len(cs) != 1 || cs[0].Name != kloud.SessionCookie || cs[0].MaxAge >= 0 {
		t.Errorf("sign out = %d %v, want 204 clearing %s", resp.StatusCode, cs, kloud.SessionCookie)
	}

	// Sign-ins, refused ones too, and sign-outs are in the audit log.
	entries, err := h.Admin.Audit(ctx, client.AuditQuery{Target: "user/" + s.User.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Outcome)
	}
	if got := strings.Join(actions, ", "); !strings.Contains(got, "session.create ok") || !strings.Contains(got, "session.delete ok") {
		t.Errorf("audit of user/%s = %s, want session.create and session.delete", s.User.ID, got)
	}

	// A session ends after its time.
	clock.Advance(13 * time.Hour)
	if got, body := do("GET", "/api/v1/credentials", "", cookie, nil, ""); got != 401 {
		t.Errorf("an expired session = %d %s, want 401", got, body)
	}
}

// TestWebApp checks that the dashboard answers every page URL and leaves
// the API alone.
func TestWebApp(t *testing.T) {
	h := kloudtest.New(t)
	for _, tc := range []struct {
		method, path string
		want         int
		wantType     string
	}{
		{"GET", "/", 200, "text/html"},
		{"GET", "/stacks", 200, "text/html"},
		{"GET", "/stacks/stk-1", 200, "text/html"},
		{"GET", "/templates/tpl-1", 200, "text/html"},
		{"GET", "/machines/m-1", 200, "text/html"},
		{"GET", "/billing", 200, "text/html"},
		{"GET", "/admin", 200, "text/html"},
		{"GET", "/credentials", 200, "text/html"},
		{"GET", "/login", 200, "text/html"},
		{"HEAD", "/machines", 200, "text/html"},
		{"GET", "/api/v1/nope", 404, "application/json"},
		{"GET", "/api/", 404, "application/json"},
		{"GET", "/api/v1/stacks", 401, "application/json"},
		{"POST", "/stacks", 404, "application/json"},
		{"GET", "/healthz", 200, "application/json"},
	} {
		req, _ := http.NewRequest(tc.method, h.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.wantType) {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want, tc.wantType)
		}
		if tc.wantType == "text/html" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: no same-origin Content-Security-Policy", tc.path)
		}
	}
}
