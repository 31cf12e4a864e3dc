package kloud_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
)

// TestIdleCheckerSparesMachinesInUse: with an idle limit of 2 s, a machine
// with an open terminal someone types in is never stopped as idle; its
// unused sibling is stopped with the reason; the busy one shows when it
// was last in use.
func TestIdleCheckerSparesMachinesInUse(t *testing.T) {
	h := kloudtest.New(t, func(cfg *kloud.Config) {
		cfg.IdleLimit = 2 * time.Second
		cfg.CheckInterval = time.Hour // the test runs the checker itself
		cfg.HeartbeatInterval = 300 * time.Millisecond
	})
	ctx := context.Background()
	plainShell(t)
	_, st, job := applyOne(t, h.Admin, "resource \"sandbox_machine\" \"m\" {\n  count = 2\n  name  = \"idle-${count.index}\"\n}\n")
	if job.Status != "succeeded" || len(st.Machines) != 2 {
		t.Fatalf("apply = %s (%s) with %d machines", job.Status, job.Error, len(st.Machines))
	}
	busy, idle := st.Machines[0], st.Machines[1]

	term := openTerminal(t, h.Admin, busy.ID, client.TerminalOptions{})
	out := readTerminal(t, term)
	typing := make(chan struct{})
	typed := make(chan struct{})
	go func() {
		defer close(typed)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-typing:
				return
			case <-tick.C:
				if _, err := io.WriteString(term, ":\n"); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(typing); <-typed }()

	// Check until the unused machine is on its way down; the idle limit
	// passes for both meanwhile.
	started := time.Now()
	deadline := started.Add(60 * time.Second)
	for {
		if err := h.Server.Checker().CheckMachines(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := h.Admin.Machine(ctx, idle.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.State.String() != "Running" && time.Since(started) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unused machine was never stopped: %s (%q)", m.State, m.Reason)
		}
		time.Sleep(250 * time.Millisecond)
	}
	waitState(t, h.Admin, idle.ID, "Stopped")
	m, err := h.Admin.Machine(ctx, idle.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Reason, "idle past the limit of 2s") {
		t.Errorf("the unused machine's reason = %q, want the idle reason", m.Reason)
	}
	b, err := h.Admin.Machine(ctx, busy.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State.String() != "Running" || strings.HasPrefix(b.Reason, "idle") {
		t.Fatalf("the machine in use = %s (%q), want Running and never idle", b.State, b.Reason)
	}
	if b.LastActivityAt == nil || time.Since(*b.LastActivityAt) > 10*time.Second {
		t.Errorf("the machine in use has last_activity_at %v", b.LastActivityAt)
	}
	if out.String() == "" {
		t.Error("the terminal printed nothing")
	}
}

// waitState waits until machine id is in state.
func waitState(t *testing.T, c *client.Client, id, state string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := c.Machine(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if m.State.String() == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s is %s (%q), want %s", id, m.State, m.Reason, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
