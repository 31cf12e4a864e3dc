package kloud_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/store/sqlite"
)

// openOn starts a second server (not serving HTTP) on dataDir.
func openOn(t *testing.T, dataDir string) (*kloud.Server, error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(context.Background(), dataDir, sqlite.WithLogger(log))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	srv, err := kloud.New(context.Background(), kloud.Config{
		DataDir: dataDir, Store: st, URL: "http://127.0.0.1:1", TerraformPath: testenv.Terraform(t),
		PluginDir: testenv.PluginDir(t), Log: log,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return srv, nil
}

func TestSecondServerOnOneDataDirRefused(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "busy", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the first server's Terraform runs: that is what a second
	// server would have killed as an orphan.
	work := filepath.Join(h.DataDir, "work")
	deadline := time.Now().Add(time.Minute)
	for len(testenv.Processes(work)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("terraform never ran in the work dir")
		}
		if j, err := h.Admin.Job(ctx, ref.JobID); err == nil && (j.Status == "succeeded" || j.Status == "failed") {
			t.Fatalf("apply ended (%s) before the second server could be tried", j.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}

	_, err = openOn(t, h.DataDir)
	want := fmt.Sprintf("data dir %s is in use by another kloud server (pid %d)", h.DataDir, os.Getpid())
	if !errors.Is(err, kloud.ErrDataDirInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second server: err = %v, want %q", err, want)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID) // unaffected

	if fi, err := os.Stat(filepath.Join(h.DataDir, kloud.LockFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, %v; want mode 0600", fi, err)
	}
	ref, err = h.Admin.DestroyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	if err := h.Server.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := openOn(t, h.DataDir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
