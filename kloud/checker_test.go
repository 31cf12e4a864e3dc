package kloud_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestCheckerStopsSilentMachine kills a machine's agent behind Kloud's back:
// once the agent timeout has passed, the checker asks the provider, which
// confirms, and the machine is Stopped with the reason, from the moment it
// was last heard of.
func TestCheckerStopsSilentMachine(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.AgentTimeout = time.Minute
		c.CheckInterval = time.Hour // the test runs the checker itself
	})
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "s", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	st, _ = h.Admin.Stack(ctx, st.ID)
	var web, db client.Machine
	for _, m := range st.Machines {
		if strings.Contains(m.Label, "web") {
			web = m
		} else {
			db = m
		}
	}
	var meta struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(web.Metadata, &meta); err != nil || meta.PID == 0 {
		t.Fatalf("web metadata %s: %v", web.Metadata, err)
	}
	if err := syscall.Kill(meta.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// Before the timeout nothing changes.
	if err := h.Server.Checker().CheckMachines(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := h.Admin.Machine(ctx, web.ID); m.State.String() != "Running" {
		t.Fatalf("before the timeout: %s", m.State)
	}
	clock.Advance(2 * time.Minute)
	if err := h.Server.Checker().CheckMachines(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := h.Admin.Machine(ctx, web.ID)
	if m.State.String() != "Stopped" || !strings.Contains(m.Reason, "agent silent") {
		t.Fatalf("silent machine = %s (%q), want Stopped: agent silent", m.State, m.Reason)
	}
	// Its uptime stops where it was last heard of, not at the check.
	if m.UptimeSeconds > 60 {
		t.Errorf("uptime %ds counts past the last heartbeat", m.UptimeSeconds)
	}
	// The db's agent is alive: the provider says so and it stays Running.
	if m, _ := h.Admin.Machine(ctx, db.ID); m.State.String() != "Running" {
		t.Errorf("live machine = %s (%q)", m.State, m.Reason)
	}
}
