package kloud

import (
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

func TestKloudAttributeLine(t *testing.T) {
	attrs := []string{"kloud_url", "agent_token"}
	tests := []struct {
		line  string
		attrs []string
		want  bool
	}{
		{`      + kloud_url   = "http://127.0.0.1:8080"`, attrs, true},
		{`      + agent_token = (sensitive value)`, attrs, true},
		{`      ~ kloud_url   = "http://a" -> "http://b"`, attrs, true},
		{`      - agent_token = (sensitive value) -> null`, attrs, true},
		{`        kloud_url   = "http://a"`, attrs, true},
		{`      + name        = "web-0"`, attrs, false},
		{`      + kloud_url_extra = "x"`, attrs, false},
		{`  # sandbox_machine.web[0] will be created`, attrs, false},
		{`echo kloud_url is set`, attrs, false},
		{`      + kloud_url   = "http://127.0.0.1:8080"`, nil, false},
		{``, attrs, false},
	}
	for _, tt := range tests {
		if got := kloudAttributeLine(tt.line, tt.attrs); got != tt.want {
			t.Errorf("kloudAttributeLine(%q, %v) = %v, want %v", tt.line, tt.attrs, got, tt.want)
		}
	}
}

func TestAgentStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const timeout = time.Minute
	tests := []struct {
		name     string
		state    machinestate.State
		lastSeen time.Time
		want     string
	}{
		{"never heard", machinestate.Running, time.Time{}, client.AgentNever},
		{"never heard, stopped", machinestate.Stopped, time.Time{}, client.AgentNever},
		{"heard within the timeout", machinestate.Running, now.Add(-30 * time.Second), client.AgentConnected},
		{"heard at the timeout", machinestate.Running, now.Add(-timeout), client.AgentConnected},
		{"heard before the timeout", machinestate.Running, now.Add(-timeout - time.Second), client.AgentSilent},
		{"starting, heard recently", machinestate.Starting, now.Add(-time.Second), client.AgentConnected},
		{"stopped, heard recently", machinestate.Stopped, now.Add(-time.Second), client.AgentSilent},
		{"terminated, heard recently", machinestate.Terminated, now.Add(-time.Second), client.AgentSilent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &stack.Machine{State: tt.state, LastSeen: tt.lastSeen, AgentVersion: "0.1.0"}
			got := agentStatus(m, now, timeout)
			if got.Status != tt.want {
				t.Fatalf("status = %s, want %s", got.Status, tt.want)
			}
			if (got.LastSeenAt == nil) != tt.lastSeen.IsZero() {
				t.Fatalf("last_seen_at = %v for last seen %v", got.LastSeenAt, tt.lastSeen)
			}
		})
	}
}
