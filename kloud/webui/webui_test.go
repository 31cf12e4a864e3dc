package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kloud/kloud/kloud/webui"
)

func TestHandler(t *testing.T) {
	built := fstest.MapFS{
		"index.html":          {Data: []byte(`<!doctype html><div id="app"></div><script type="module" src="/assets/index-abc.js"></script>`)},
		"assets/index-abc.js": {Data: []byte(`console.log(1)`)},
	}
	empty := fstest.MapFS{".gitkeep": {Data: nil}}
	for _, tc := range []struct {
		name       string
		assets     fstest.MapFS
		path       string
		want       int
		wantIn     string
		wantType   string
		wantCached bool
	}{
		{"the app at /", built, "/", 200, `<div id="app">`, "text/html", false},
		{"the app at a page URL", built, "/stacks/stk-1", 200, `<div id="app">`, "text/html", false},
		{"the app for index.html itself", built, "/index.html", 200, `<div id="app">`, "text/html", false},
		{"a hashed asset, cached", built, "/assets/index-abc.js", 200, "console.log", "text/javascript", true},
		{"a missing asset is not the app", built, "/assets/gone.js", 404, "", "text/plain", false},
		{"a path that climbs out", built, "/../../etc/passwd", 200, `<div id="app">`, "text/html", false},
		{"a binary without the app says how to build it", empty, "/", 200, "./build.sh build", "text/html", false},
		{"and so on every page", empty, "/machines", 200, "npm run build", "text/html", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			webui.Handler(tc.assets).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			h := rec.Result().Header
			if rec.Code != tc.want || !strings.Contains(string(body), tc.wantIn) || !strings.HasPrefix(h.Get("Content-Type"), tc.wantType) {
				t.Errorf("GET %s = %d %s %.80q, want %d %s with %q", tc.path, rec.Code, h.Get("Content-Type"), body, tc.want, tc.wantType, tc.wantIn)
			}
			if cached := strings.Contains(h.Get("Cache-Control"), "immutable"); cached != tc.wantCached {
				t.Errorf("GET %s Cache-Control %q, want immutable %v", tc.path, h.Get("Cache-Control"), tc.wantCached)
			}
			if h.Get("Content-Security-Policy") != webui.ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: security headers %v", tc.path, h)
			}
		})
	}
}
