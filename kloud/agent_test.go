package kloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/klient/agentapi"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// touchCounter counts the heartbeat writes that reach the store.
type touchCounter struct {
	store.Store
	touches atomic.Int64
}

func (c *touchCounter) TouchMachine(ctx context.Context, id string, at time.Time, version string) error {
	c.touches.Add(1)
	return c.Store.TouchMachine(ctx, id, at, version)
}

// TestAgentReportContract posts the agent's reports as klient sends them
// (a fractional uptime, which the server once refused) and checks what a
// heartbeat costs: the store is written at first, then only when the last
// write is older than a quarter of the agent timeout or the version
// changed.
func TestAgentReportContract(t *testing.T) {
	clock := &kloudtest.Clock{}
	var counter *touchCounter
	h := kloudtest.New(t, func(c *kloud.Config) {
		counter = &touchCounter{Store: c.Store}
		c.Store = counter
		c.Now = clock.Now
		c.AgentTimeout = time.Hour
		c.HeartbeatInterval = 10 * time.Second
		c.CheckInterval = time.Hour
	})
	ctx := context.Background()
	const token = "agent-token-for-the-contract-test"
	m := &stack.Machine{StackID: "stk-none", OwnerID: "usr-none", Provider: "sandbox", Label: "sandbox_machine.x",
		State: machinestate.Running, AgentTokenHash: kloud.HashToken(token)}
	if err := h.Store.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	post := func(path string, body any) (int, agentapi.Ack, string) {
		t.Helper()
		b, _ := json.Marshal(body)
		if raw, ok := body.(string); ok {
			b = []byte(raw)
		}
		req, _ := http.NewRequest(http.MethodPost, h.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		raw.ReadFrom(resp.Body)
		var ack agentapi.Ack
		json.Unmarshal(raw.Bytes(), &ack)
		return resp.StatusCode, ack, raw.String()
	}

	if got, _ := h.Admin.Machine(ctx, m.ID); got.Agent.Status != client.AgentNever || got.Agent.LastSeenAt != nil {
		t.Fatalf("agent before any report = %+v, want never", got.Agent)
	}
	// What klient sends, byte for byte in form: uptime with a fraction.
	code, ack, body := post(agentapi.RegisterPath, `{"machine_id":"sbx-1","address":"127.0.0.1:4000","size":"small","uptime_seconds":5.007724517,"version":"0.1.0"}`)
	if code != http.StatusOK {
		t.Fatalf("register = %d %s", code, body)
	}
	if ack.MachineID != m.ID || ack.State != "Running" || ack.Interval() != 10*time.Second {
		t.Fatalf("ack = %+v, want the machine, Running and a 10s heartbeat", ack)
	}
	got, err := h.Admin.Machine(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Agent.Status != client.AgentConnected || got.Agent.Version != "0.1.0" || got.Agent.LastSeenAt == nil {
		t.Fatalf("agent after register = %+v", got.Agent)
	}

	steps := []struct {
		name    string
		advance time.Duration
		version string
		writes  int64 // total store writes after the step
	}{
		{"heartbeats within the granularity are not written", 10 * time.Second, "0.1.0", 1},
		{"another one", 10 * time.Second, "0.1.0", 1},
		{"a new version is written at once", time.Second, "0.2.0", 2},
		{"past a quarter of the timeout it is written", 16 * time.Minute, "0.2.0", 3},
		{"and not again right after", 10 * time.Second, "0.2.0", 3},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		code, _, body := post(agentapi.HeartbeatPath, agentapi.Report{UptimeSeconds: 12.5, Version: st.version})
		if code != http.StatusOK {
			t.Fatalf("%s: heartbeat = %d %s", st.name, code, body)
		}
		if n := counter.touches.Load(); n != st.writes {
			t.Errorf("%s: %d store writes, want %d", st.name, n, st.writes)
		}
	}
	if got, _ := h.Admin.Machine(ctx, m.ID); got.Agent.Version != "0.2.0" || got.Agent.Status != client.AgentConnected {
		t.Errorf("agent after upgrade = %+v", got.Agent)
	}

	// A newer agent's extra fields are ignored, not refused.
	if code, _, body := post(agentapi.HeartbeatPath, `{"version":"0.2.0","uptime_seconds":1.5,"load_average":[0.1,0.2]}`); code != http.StatusOK {
		t.Errorf("report with an unknown field = %d %s, want 200", code, body)
	}

	// Bad reports are 400 naming the field, quoting at most 64 characters.
	bad := []struct {
		name, body, field string
	}{
		{"uptime not a number", `{"uptime_seconds":"five"}`, "uptime_seconds"},
		{"version too long", `{"version":"` + strings.Repeat("v", 5000) + `"}`, "version"},
	}
	for _, tt := range bad {
		code, _, body := post(agentapi.HeartbeatPath, tt.body)
		var e client.Error
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusBadRequest || e.Field != tt.field || len(e.Message) > 200 {
			t.Errorf("%s: %d %s, want 400 naming %s, short", tt.name, code, body, tt.field)
		}
	}

	// An hour and more without a word: silent, with the last time seen.
	clock.Advance(2 * time.Hour)
	if got, _ := h.Admin.Machine(ctx, m.ID); got.Agent.Status != client.AgentSilent || got.Agent.LastSeenAt == nil {
		t.Errorf("agent after two silent hours = %+v, want silent", got.Agent)
	}
}
