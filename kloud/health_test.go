package kloud_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/mongo"
	"github.com/kloud/kloud/store/secretbox"
)

// onMongo opens the MongoDB backend on a database of srv, with calls
// bounded by timeout, for kloudtest.NewOn.
func onMongo(srv *ferrettest.Server, timeout time.Duration) func(string) (store.Store, error) {
	return func(string) (store.Store, error) {
		box, err := secretbox.FromPassphrase("health test")
		if err != nil {
			return nil, err
		}
		return mongo.Open(context.Background(), srv.NewDatabaseURI("health"), "",
			mongo.WithBox(box), mongo.WithTimeout(timeout), mongo.WithLogger(slog.New(slog.DiscardHandler)))
	}
}

// until polls cond until it holds or a minute passes.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func storeCheck(r *client.Readiness) client.ReadyCheck {
	for _, c := range r.Checks {
		if c.Name == "store" {
			return c
		}
	}
	return client.ReadyCheck{}
}

// TestStoreOutage stops the MongoDB server (FerretDB) under a running
// server: API calls answer 503 with Retry-After, never 500, /readyz says
// not ready and why, /healthz stays alive; when the database comes back
// the server serves again without a restart.
func TestStoreOutage(t *testing.T) {
	db := ferrettest.Start(t)
	h := kloudtest.NewOn(t, onMongo(db, 300*time.Millisecond), func(cfg *kloud.Config) { cfg.StoreName = "mongodb" })
	ctx := context.Background()

	ready, err := h.Admin.Ready(ctx)
	if err != nil || !ready.Ready {
		t.Fatalf("readyz before the outage = %+v, %v; want ready", ready, err)
	}
	if _, err := h.Admin.Machines(ctx); err != nil {
		t.Fatalf("list machines before the outage: %v", err)
	}

	db.Stop()
	var last error
	until(t, "503", func() bool {
		_, last = h.Admin.Machines(ctx)
		var e *client.Error
		if errors.As(last, &e) && e.Status == http.StatusInternalServerError {
			t.Fatalf("an outage answered 500: %v", last)
		}
		return errors.As(last, &e) && e.Status == http.StatusServiceUnavailable
	})
	for _, path := range []string{"/api/v1/machines", "/api/v1/stacks", "/api/v1/credentials"} {
		req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s in the outage = %d, Retry-After %q; want 503 with Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	ready, err = h.Admin.Ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := storeCheck(ready); ready.Ready || c.OK || !strings.Contains(c.Reason, "unreachable") {
		t.Errorf("readyz in the outage = %+v; want not ready, store unreachable", ready)
	}
	if _, err := h.Admin.Health(ctx); err != nil {
		t.Errorf("healthz in the outage: %v; want alive", err)
	}

	db.Restart(t)
	until(t, "ready again", func() bool {
		r, err := h.Admin.Ready(ctx)
		return err == nil && r.Ready
	})
	if _, err := h.Admin.Machines(ctx); err != nil {
		t.Fatalf("list machines after the outage: %v", err)
	}
}
