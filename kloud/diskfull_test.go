package kloud_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// fullDisk wraps a store and makes chosen writes fail as on a full disk:
// ENOSPC from the file system, or SQLite's own words for it.
type fullDisk struct {
	store.Store
	templates   atomic.Bool  // CreateTemplate fails with ENOSPC
	credentials atomic.Bool  // CreateCredential fails as SQLite does
	building    atomic.Bool  // setting a stack building fails as SQLite does
	finishes    atomic.Int32 // how many FinishJob calls still fail
	finishCalls atomic.Int32
}

var errSQLiteFull = errors.New("commit: database or disk is full (13)")

func (d *fullDisk) CreateTemplate(ctx context.Context, t *stack.Template) error {
	if d.templates.Load() {
		return fmt.Errorf("create template: %w", &fs.PathError{Op: "write", Path: "kloud.db-wal", Err: syscall.ENOSPC})
	}
	return d.Store.CreateTemplate(ctx, t)
}

func (d *fullDisk) CreateCredential(ctx context.Context, c *stack.Credential) error {
	if d.credentials.Load() {
		return fmt.Errorf("create credential: %w", errSQLiteFull)
	}
	return d.Store.CreateCredential(ctx, c)
}

func (d *fullDisk) SetStackStatus(ctx context.Context, id string, status machinestate.StackState, reason string, at time.Time) error {
	if d.building.Load() && status == machinestate.StackBuilding {
		return fmt.Errorf("set stack status: %w", errSQLiteFull)
	}
	return d.Store.SetStackStatus(ctx, id, status, reason, at)
}

func (d *fullDisk) FinishJob(ctx context.Context, id, worker string, status jobs.Status, errMsg string, at time.Time) error {
	d.finishCalls.Add(1)
	if d.finishes.Add(-1) >= 0 {
		return fmt.Errorf("finish job %s: %w", id, errSQLiteFull)
	}
	return d.Store.FinishJob(ctx, id, worker, status, errMsg, at)
}

func TestDiskFullAnswers507(t *testing.T) {
	disk := &fullDisk{}
	h := kloudtest.New(t, func(c *kloud.Config) { disk.Store = c.Store; c.Store = disk })
	ctx := context.Background()
	disk.templates.Store(true)
	disk.credentials.Store(true)
	for _, c := range []struct {
		name  string
		call  func() error
		cause string
	}{
		{"ENOSPC", func() error {
			_, err := h.Admin.CreateTemplate(ctx, client.CreateTemplateRequest{Title: "t", Provider: "sandbox", Content: twoMachines, Format: "hcl"})
			return err
		}, "no space left on device"},
		{"SQLITE_FULL", func() error {
			_, err := h.Admin.CreateCredential(ctx, client.CreateCredentialRequest{Provider: "sandbox", Title: "c", Data: []byte(`{}`)})
			return err
		}, "database or disk is full"},
	} {
		var e *client.Error
		if err := c.call(); !errors.As(err, &e) || e.Status != http.StatusInsufficientStorage || !strings.Contains(e.Message, c.cause) {
			t.Errorf("%s: %v, want 507 naming %q", c.name, err, c.cause)
		}
	}
}

// A job whose own error was the disk says so, and its end is recorded
// although the first writes of it failed: never "stopped renewing its
// lease".
func TestDiskFullJobReasonIsTrue(t *testing.T) {
	disk := &fullDisk{}
	h := kloudtest.New(t, func(c *kloud.Config) { disk.Store = c.Store; c.Store = disk })
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "full", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	disk.building.Store(true)
	disk.finishes.Store(3)
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	j, err := h.Admin.WaitJob(wctx, ref.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != "failed" || !strings.HasPrefix(j.Error, "the server's disk is full (database or disk is full)") {
		t.Fatalf("job = %s %q, want failed saying the disk is full", j.Status, j.Error)
	}
	if n := disk.finishCalls.Load(); n != 4 {
		t.Errorf("FinishJob called %d times, want 3 failures and 1 success", n)
	}
}
