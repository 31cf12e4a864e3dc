// Package webui serves Kloud's web dashboard: the single-page app built
// from web/ by build.sh (npm ci, vite build into dist/) and embedded in the
// kloud binary. Every path that is not a built file answers the app's
// index.html, so each page has its own URL (history routing); a binary
// built without the assets answers a page that says how to build them.
package webui

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// Assets is the built app, rooted at its index.html; nil when the binary
// was built without it.
var Assets = func() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil
	}
	return sub
}()

// ContentSecurityPolicy keeps the page to Kloud's own origin: scripts,
// styles, images, fetches, event streams and WebSockets (which 'self'
// covers in CSP 3 browsers) all come from where the page came from.
// Styles may be inline: the terminal and the charts set them.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; " +
	"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the app from assets (Assets when nil): a file that exists
// under its own path (hashed assets cached for a year), anything else the
// app's index.html (never cached). Only GET and HEAD reach it.
func Handler(assets fs.FS) http.Handler {
	if assets == nil {
		assets = Assets
	}
	var index []byte
	if assets != nil {
		index, _ = fs.ReadFile(assets, "index.html")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if index == nil {
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(missingPage))
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && name != "index.html" {
			if st, err := fs.Stat(assets, name); err == nil && !st.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				}
				http.ServeFileFS(w, r, assets, name)
				return
			}
			// A missing hashed asset is a 404, not the app: a stale page
			// must not run index.html as a script.
			if strings.HasPrefix(name, "assets/") {
				http.NotFound(w, r)
				return
			}
		}
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}

// missingPage is what / answers in a binary built without the app.
const missingPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kloud</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>Kloud</h1>
<p>This kloud binary was built without the web dashboard's assets.
The API under <code>/api/</code> works as usual.</p>
<p>To build the dashboard (Node.js 20 and npm needed), run from the repository:</p>
<pre>./build.sh build</pre>
<p>or by hand: <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, which writes
<code>kloud/webui/dist</code>, then <code>go build ./cmd/kloud</code>.</p>
</body></html>
`
