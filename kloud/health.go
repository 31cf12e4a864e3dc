package kloud

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/version"
	"github.com/kloud/kloud/kloud/checker"
	"github.com/kloud/kloud/kloud/rater"
	"github.com/kloud/kloud/store"
)

// probeTimeout bounds the store calls of /healthz and /readyz: a probe
// answers within it even when the store hangs.
const probeTimeout = 2 * time.Second

// retryAfter is the Retry-After (seconds) of a 503: the store is
// unreachable or the server not ready.
const retryAfter = 5

// handleHealth answers whether the process is alive; it is 200 whenever
// the server answers at all (see /readyz for whether it can serve).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, client.Health{
		Status:  "ok",
		Store:   s.cfg.StoreName,
		Version: version.Version,
		Singletons: map[string]bool{
			checker.LeaseName: s.checker.Held(ctx),
			rater.LeaseName:   s.rating.Held(ctx),
		},

		Confinement: s.cfg.Confiner.String(),
		Confined:    s.cfg.Confiner.Enabled(),
	})
}

// handleReady answers 200 when this replica can serve: the store answers
// with its migrations current, and its job workers and singleton loops
// run. Otherwise 503 with Retry-After and the reason of each failing
// check.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	checks := []client.ReadyCheck{s.storeCheck(ctx)}
	checks = append(checks, s.check("workers", s.engine.Running(), "job workers are not running"))
	checks = append(checks, s.loops.checks()...)
	ready := true
	for _, c := range checks {
		ready = ready && c.OK
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, status, client.Readiness{Ready: ready, Checks: checks})
}

func (s *Server) check(name string, ok bool, reason string) client.ReadyCheck {
	if ok {
		return client.ReadyCheck{Name: name, OK: true}
	}
	return client.ReadyCheck{Name: name, Reason: reason}
}

// storeCheck asks the backend whether it answers with its schema current.
// An outage's own error (addresses, driver text) goes to the log, the
// probe says only that the store cannot be reached.
func (s *Server) storeCheck(ctx context.Context) client.ReadyCheck {
	probe, ok := s.cfg.Store.(store.Readiness)
	if !ok {
		return client.ReadyCheck{Name: "store", OK: true}
	}
	err := probe.Ready(ctx)
	switch {
	case err == nil:
		return client.ReadyCheck{Name: "store", OK: true}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("readiness: store unreachable", slog.String("error", err.Error()))
		return client.ReadyCheck{Name: "store", Reason: "store unreachable (" + s.cfg.StoreName + ")"}
	}
	return client.ReadyCheck{Name: "store", Reason: clipLongWords(err.Error())}
}

// loopSet records which of the server's background loops run now.
type loopSet struct {
	mu      sync.Mutex
	running map[string]bool
}

// run marks name running while fn runs.
func (l *loopSet) run(name string, fn func()) {
	l.set(name, true)
	defer l.set(name, false)
	fn()
}

// expect names a loop readiness requires before it first runs.
func (l *loopSet) expect(names ...string) {
	for _, n := range names {
		l.set(n, false)
	}
}

func (l *loopSet) set(name string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running == nil {
		l.running = make(map[string]bool)
	}
	l.running[name] = on
}

// checks is one readiness check per expected loop, in name order.
func (l *loopSet) checks() []client.ReadyCheck {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.running))
	for n := range l.running {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]client.ReadyCheck, 0, len(names))
	for _, n := range names {
		c := client.ReadyCheck{Name: "singleton " + n, OK: l.running[n]}
		if !c.OK {
			c.Reason = n + " loop is not running"
		}
		out = append(out, c)
	}
	return out
}
