package kloud_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/klient"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
)

// The tests below run both halves of the agent contract together over
// time: the real klient binary, started by the real sandbox provider for
// each machine of a stack Terraform applies, reporting to a real
// in-process server. A short heartbeat interval (which the server hands
// the agents in its acks) and agent timeout keep them quick; every wait
// is a poll with a deadline.

const testHeartbeat = 200 * time.Millisecond

// machineInfo is the part of a sandbox machine's metadata the tests use.
type machineInfo struct {
	PID     int    `json:"pid"`
	Address string `json:"address"`
}

func metaOf(t *testing.T, m client.Machine) machineInfo {
	t.Helper()
	var mi machineInfo
	if err := json.Unmarshal(m.Metadata, &mi); err != nil || mi.PID == 0 || mi.Address == "" {
		t.Fatalf("machine %s metadata %s: %v", m.ID, m.Metadata, err)
	}
	return mi
}

// applyWebDB applies the two-machine template (web, not always_on; db,
// always_on) and returns the stack's machines.
func applyWebDB(t *testing.T, h *kloudtest.Harness) (web, db client.Machine) {
	t.Helper()
	ctx := context.Background()
	credID, tplID := setup(t, h.Admin)
	st, err := h.Admin.CreateStack(ctx, client.CreateStackRequest{Title: "agents", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := h.Admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, h.Admin, ref.JobID)
	checkApplyEvents(t, h.Admin, ref.JobID)
	st, err = h.Admin.Stack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Machines) != 2 {
		t.Fatalf("stack has %d machines, want 2", len(st.Machines))
	}
	for _, m := range st.Machines {
		if strings.Contains(m.Label, "web") {
			web = m
		} else {
			db = m
		}
	}
	return web, db
}

// checkApplyEvents checks what a user following an apply reads: every line
// once (a finished resource is one progress event, not also an output
// line), and none of Kloud's own attributes in the plan.
func checkApplyEvents(t *testing.T, c *client.Client, jobID string) {
	t.Helper()
	evs, err := c.JobEvents(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var completions int
	for _, e := range evs {
		if strings.Contains(e.Message, "kloud_url") || strings.Contains(e.Message, "agent_token") {
			t.Errorf("event %d shows Kloud's own attribute: %q", e.Seq, e.Message)
		}
		if strings.Contains(e.Message, "Creation complete") {
			completions++
			seen[e.Message]++
		}
	}
	if completions != 2 {
		t.Errorf("%d creation lines, want 2 (one per machine)", completions)
	}
	for msg, n := range seen {
		if n != 1 {
			t.Errorf("%q shown %d times", msg, n)
		}
	}
}

// pollMachines lists the machines until cond holds, or fails the test
// after the deadline with the last list.
func pollMachines(t *testing.T, c *client.Client, what string, cond func(map[string]client.Machine) bool) map[string]client.Machine {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms, err := c.Machines(context.Background())
		if err != nil {
			t.Fatalf("list machines: %v", err)
		}
		byID := make(map[string]client.Machine, len(ms))
		for _, m := range ms {
			byID[m.ID] = m
		}
		if cond(byID) {
			return byID
		}
		if time.Now().After(deadline) {
			for _, m := range ms {
				t.Logf("machine %s %s %s agent %+v", m.ID, m.Label, m.State, m.Agent)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentsConnectedOverTime(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.HeartbeatInterval = testHeartbeat
		c.AgentTimeout = 5 * time.Second
		c.CheckInterval = time.Hour // no checker pass during the test
	})
	web, db := applyWebDB(t, h)
	applied := time.Now().UTC()

	// Past two heartbeat intervals after the apply, both agents have been
	// heard from again (the stored time is refreshed a few times per
	// agent timeout, so this also proves they kept beating).
	after := applied.Add(2 * testHeartbeat)
	ms := pollMachines(t, h.Admin, "both agents heard from after two heartbeat intervals", func(ms map[string]client.Machine) bool {
		for _, id := range []string{web.ID, db.ID} {
			a := ms[id].Agent
			if a.Status != client.AgentConnected || a.LastSeenAt == nil || !a.LastSeenAt.After(after) {
				return false
			}
		}
		return true
	})
	for _, id := range []string{web.ID, db.ID} {
		m := ms[id]
		if m.State != machinestate.Running {
			t.Errorf("machine %s is %s (%q), want Running", m.Label, m.State, m.Reason)
		}
		if m.Agent.Version != agentVersion(t) {
			t.Errorf("machine %s agent version %q, want %q", m.Label, m.Agent.Version, agentVersion(t))
		}
		if age := time.Since(*m.Agent.LastSeenAt); age > 5*time.Second {
			t.Errorf("machine %s last seen %s ago", m.Label, age)
		}
		// The single read agrees with the list.
		one, err := h.Admin.Machine(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if one.Agent.Status != client.AgentConnected || one.Agent.Version != agentVersion(t) {
			t.Errorf("machine %s read alone: agent %+v", m.Label, one.Agent)
		}
		// The agent's side: registered, beating at the pace the server set.
		var info klient.Info
		resp, err := http.Get("http://" + metaOf(t, m).Address + "/v1/info")
		if err != nil {
			t.Fatalf("agent info of %s: %v", m.Label, err)
		}
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !info.Registered || info.LastHeartbeatAt == nil || info.HeartbeatSeconds != testHeartbeat.Seconds() {
			t.Errorf("agent of %s: registered %v, last heartbeat %v, interval %vs; want registered, beating every %s",
				m.Label, info.Registered, info.LastHeartbeatAt, info.HeartbeatSeconds, testHeartbeat)
		}
	}
}

// TestListAndInfoAgree: a list and a single read made in the same second
// show the same uptime and agent status for a running machine, in the API
// and in the CLI's AGENT column and agent block.
func TestListAndInfoAgree(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.HeartbeatInterval = testHeartbeat
		c.AgentTimeout = 5 * time.Second
		c.CheckInterval = time.Hour
	})
	ctx := context.Background()
	web, _ := applyWebDB(t, h)
	pollMachines(t, h.Admin, "web's agent connected", func(ms map[string]client.Machine) bool {
		return ms[web.ID].Agent.Status == client.AgentConnected
	})
	// Uptime never decreases: when two lists around a read agree, the read
	// was made in their second and must agree too.
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := pollMachines(t, h.Admin, "a list", func(map[string]client.Machine) bool { return true })[web.ID]
		one, err := h.Admin.Machine(ctx, web.ID)
		if err != nil {
			t.Fatal(err)
		}
		after := pollMachines(t, h.Admin, "a list", func(map[string]client.Machine) bool { return true })[web.ID]
		if before.UptimeSeconds == after.UptimeSeconds {
			if one.UptimeSeconds != before.UptimeSeconds || one.Agent.Status != before.Agent.Status {
				t.Fatalf("same second: list uptime %ds agent %s, info uptime %ds agent %s",
					before.UptimeSeconds, before.Agent.Status, one.UptimeSeconds, one.Agent.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never two lists in one second")
		}
	}

	kloudCLI := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kloudBinary(t), append(args, "--server", h.URL, "--token", h.AdminToken)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kloud %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := kloudCLI("machine", "list")
	if !strings.Contains(list, "AGENT") || !strings.Contains(list, web.ID) || !strings.Contains(list, "connected") {
		t.Errorf("machine list shows no agent column:\n%s", list)
	}
	info := kloudCLI("machine", "info", web.ID)
	for _, want := range []string{"agent:", "status:       connected", "version:      " + agentVersion(t), "last seen at: 20"} {
		if !strings.Contains(info, want) {
			t.Errorf("machine info lacks %q:\n%s", want, info)
		}
	}
}

func TestSilentAgentStoppedByChecker(t *testing.T) {
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.HeartbeatInterval = testHeartbeat
		// Long enough over the heartbeat that a live agent on a loaded
		// machine never reads silent.
		c.AgentTimeout = 4 * time.Second
		c.CheckInterval = time.Hour // the test runs the checker itself
	})
	ctx := context.Background()
	web, db := applyWebDB(t, h)
	pollMachines(t, h.Admin, "both agents connected", func(ms map[string]client.Machine) bool {
		return ms[web.ID].Agent.Status == client.AgentConnected && ms[db.ID].Agent.Status == client.AgentConnected
	})

	// Kill web's agent behind Kloud's back (its pid is in the metadata).
	if err := syscall.Kill(metaOf(t, web).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ms := pollMachines(t, h.Admin, "web's agent silent", func(ms map[string]client.Machine) bool {
		return ms[web.ID].Agent.Status == client.AgentSilent
	})
	if m := ms[web.ID]; m.State != machinestate.Running || m.Agent.LastSeenAt == nil {
		t.Fatalf("silent machine before the check: %s, agent %+v", m.State, m.Agent)
	}
	if a := ms[db.ID].Agent; a.Status != client.AgentConnected {
		t.Fatalf("db's live agent is %s", a.Status)
	}

	if err := h.Server.Checker().CheckMachines(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := h.Admin.Machine(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != machinestate.Stopped || !strings.HasPrefix(m.Reason, "agent silent since ") || !strings.Contains(m.Reason, "provider reports Stopped") {
		t.Fatalf("after the check: %s (%q), want Stopped: agent silent since …; provider reports Stopped", m.State, m.Reason)
	}
	if m.Agent.Status != client.AgentSilent {
		t.Errorf("stopped machine's agent is %s, want silent", m.Agent.Status)
	}
	if m, _ := h.Admin.Machine(ctx, db.ID); m.State != machinestate.Running || m.Agent.Status != client.AgentConnected {
		t.Errorf("db after the check: %s, agent %s", m.State, m.Agent.Status)
	}
}

func TestIdleMachineStoppedByChecker(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.HeartbeatInterval = testHeartbeat
		c.AgentTimeout = time.Hour
		c.IdleLimit = time.Minute
		c.CheckInterval = time.Hour // the test runs the checker itself
	})
	ctx := context.Background()
	web, db := applyWebDB(t, h)
	pollMachines(t, h.Admin, "both agents connected", func(ms map[string]client.Machine) bool {
		return ms[web.ID].Agent.Status == client.AgentConnected && ms[db.ID].Agent.Status == client.AgentConnected
	})
	// Within the limit nothing happens.
	if err := h.Server.Checker().CheckMachines(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := h.Admin.Machine(ctx, web.ID); m.State != machinestate.Running {
		t.Fatalf("web within the idle limit: %s (%q)", m.State, m.Reason)
	}

	clock.Advance(2 * time.Minute)
	if err := h.Server.Checker().CheckMachines(ctx); err != nil {
		t.Fatal(err)
	}
	ms := pollMachines(t, h.Admin, "web stopped for idleness", func(ms map[string]client.Machine) bool {
		return ms[web.ID].State == machinestate.Stopped
	})
	if r := ms[web.ID].Reason; !strings.HasPrefix(r, "idle past the limit of 1m0s") {
		hist, _ := h.Store.MachineHistory(ctx, web.ID)
		for _, r := range hist {
			t.Logf("history %s %s %q", r.At, r.State, r.Reason)
		}
		t.Errorf("idle machine's reason %q", r)
	}
	// db is always_on: connected, idle as long, still Running.
	if m := ms[db.ID]; m.State != machinestate.Running || m.Agent.Status != client.AgentConnected {
		t.Errorf("always_on db: %s (%q), agent %s", m.State, m.Reason, m.Agent.Status)
	}
	// The audit log names the checker ("system") as the one who stopped web.
	es, err := h.Admin.Audit(ctx, client.AuditQuery{Actor: "system"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(es, func(e client.AuditEntry) bool {
		return e.Action == "machine.stop.idle" && e.Target == "machine/"+web.ID && strings.HasPrefix(e.Detail, "idle past the limit")
	}) {
		t.Errorf("audit by system = %+v, want web's idle stop", es)
	}
}

// agentVersion is the version the built agent reports: the one version
// build.sh sets (klient -version prints it).
func agentVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(testenv.Klient(t), "-version").Output()
	if err != nil {
		t.Fatalf("klient -version: %v", err)
	}
	return strings.TrimSpace(string(out))
}
