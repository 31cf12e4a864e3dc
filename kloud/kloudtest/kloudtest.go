// Package kloudtest starts a whole Kloud server in-process for tests: a real
// SQLite store in a temp dir, real Terraform, the real sandbox provider
// plugin and agents, and the typed client logged in as the admin.
package kloudtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud"
	_ "github.com/kloud/kloud/provider/aws"          // EC2, against its simulator in tests
	_ "github.com/kloud/kloud/provider/digitalocean" // droplets, against its simulator in tests
	_ "github.com/kloud/kloud/provider/sandbox"      // the embedded default provider
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

// Harness is one running server.
type Harness struct {
	Server  *kloud.Server
	URL     string
	DataDir string
	// Admin is a client logged in with the admin token.
	Admin *client.Client
	// AdminToken is the generated admin token.
	AdminToken string
	// Store is the server's store, for tests that seed it directly.
	Store store.Store
}

// New starts a server on t.TempDir(); options may change its config before
// it starts. Everything is stopped, and every sandbox agent checked gone, at
// the end of the test.
func New(t testing.TB, options ...func(*kloud.Config)) *Harness {
	t.Helper()
	dataDir := t.TempDir()
	tf := testenv.Terraform(t)
	plugins := testenv.PluginDir(t)
	klient := testenv.Klient(t)
	t.Setenv("KLOUD_KLIENT", klient)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := sqlite.Open(ctx, dataDir, sqlite.WithLogger(log))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = kloud.NewHTTPServer(nil, kloud.HTTPOptions{}) // serve's timeouts
	cfg := kloud.Config{
		DataDir:       dataDir,
		Store:         st,
		URL:           "http://" + ts.Listener.Addr().String(),
		TerraformPath: tf,
		PluginDir:     plugins,
		KlientPath:    klient,
		Workers:       4,
		JobLease:      10 * time.Second,
		ShutdownGrace: new(20 * time.Second),
		SoleServer:    true, // its own SQLite file
		Log:           log,
	}
	for _, o := range options {
		o(&cfg)
	}
	srv, err := kloud.New(ctx, cfg)
	if err != nil {
		st.Close()
		t.Fatalf("new server: %v", err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	srv.Start()
	h := &Harness{Server: srv, URL: ts.URL, DataDir: dataDir, AdminToken: srv.AdminToken, Store: st}
	h.Admin = client.New(ts.URL, srv.AdminToken)
	t.Cleanup(func() {
		h.destroyAll(t)
		ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		testenv.NoProcesses(t, filepath.Join(dataDir, "sandbox"))
	})
	return h
}

// destroyAll destroys every stack still holding machines, so no agent
// outlives the test.
func (h *Harness) destroyAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stacks, err := h.Admin.Stacks(ctx)
	if err != nil {
		t.Logf("list stacks at cleanup: %v", err)
		return
	}
	for _, s := range stacks {
		if s.Status == "destroyed" || len(s.Machines) == 0 {
			continue
		}
		ref, err := h.Admin.DestroyStack(ctx, s.ID)
		if err != nil {
			t.Logf("destroy stack %s at cleanup: %v", s.ID, err)
			continue
		}
		if _, err := h.Admin.WaitJob(ctx, ref.JobID); err != nil {
			t.Logf("wait destroy of %s: %v", s.ID, err)
		}
	}
}

// Confined is an option that runs the server's Terraform and sandbox
// machines confined. It skips the test where confinement is unavailable,
// unless CI is set (CI installs bubblewrap), where it fails.
func Confined(t testing.TB) func(*kloud.Config) {
	t.Helper()
	c, err := confine.Detect(context.Background(), confine.Options{})
	if errors.Is(err, confine.ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("kloudtest: no confinement here: %v", err)
	}
	if err != nil {
		t.Fatalf("kloudtest: detect confinement: %v", err)
	}
	return func(cfg *kloud.Config) { cfg.Confiner = c }
}

// Member creates a member and returns a client acting as them.
func (h *Harness) Member(t testing.TB, name string) *client.Client {
	t.Helper()
	u, err := h.Admin.CreateUser(context.Background(), client.CreateUserRequest{Name: name, Role: "member"})
	if err != nil {
		t.Fatalf("create member %s: %v", name, err)
	}
	return h.Admin.WithToken(u.Token)
}

// WaitJob follows a job's events until it ends and fails the test if it
// did not succeed.
func WaitJob(t testing.TB, c *client.Client, jobID string) *client.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	j, err := c.FollowJob(ctx, jobID, nil)
	if err != nil {
		t.Fatalf("wait job %s: %v", jobID, err)
	}
	if j.Status != "succeeded" {
		evs, _ := c.JobEvents(context.Background(), jobID)
		for _, e := range evs {
			t.Logf("event %d %s: %s", e.Seq, e.Kind, e.Message)
		}
		t.Fatalf("job %s %s: %s", jobID, j.Status, j.Error)
	}
	return j
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Clock is a clock tests move forward: the real time plus an offset, so
// processes outside the test (Terraform, agents) still see time pass.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the real time moved by the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// SandboxStack creates, as c's user, a sandbox credential, a template of
// content and a stack of them, and returns the stack (not applied yet).
func SandboxStack(t testing.TB, c *client.Client, content string) *client.Stack {
	t.Helper()
	ctx := context.Background()
	cred, err := c.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("create credential: %v", err)
	}
	tpl, err := c.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "t", Provider: "sandbox", Content: content})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	st, err := c.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tpl.ID, CredentialID: cred.ID})
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	return st
}

// ApplySandbox creates a sandbox stack of content for c's user, applies
// it, fails the test unless the apply succeeds, and returns its machines.
func ApplySandbox(t testing.TB, c *client.Client, content string) []client.Machine {
	t.Helper()
	ctx := context.Background()
	st := SandboxStack(t, c, content)
	ref, err := c.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatalf("apply stack: %v", err)
	}
	WaitJob(t, c, ref.JobID)
	full, err := c.Stack(ctx, st.ID)
	if err != nil {
		t.Fatalf("read stack: %v", err)
	}
	return full.Machines
}
