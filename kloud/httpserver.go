package kloud

import (
	"net/http"
	"time"
)

// HTTPOptions are the HTTP server's timeouts. Zero values take the defaults
// noted. There is deliberately no write timeout: a followed job's events
// (?follow=1) stream for as long as the job runs.
type HTTPOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (default
	// 1m): a body sent slower than that is cut.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long (default 2m).
	IdleTimeout time.Duration
}

func (o *HTTPOptions) setDefaults() {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
}

// NewHTTPServer returns the http.Server that serves handler with o's
// timeouts; `kloud serve` and the tests' harness both use it.
func NewHTTPServer(handler http.Handler, o HTTPOptions) *http.Server {
	o.setDefaults()
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		IdleTimeout:       o.IdleTimeout,
	}
}
