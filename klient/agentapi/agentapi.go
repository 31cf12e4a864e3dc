// Package agentapi is the contract between a machine's agent (klient) and
// Kloud: the paths the agent calls and the one type of each message, used
// by both halves. It imports nothing of Kloud, so the agent stays small and
// the server may import it without reversing the dependency direction.
package agentapi

import (
	"encoding/json"
	"time"
)

// The paths the agent calls on Kloud, with its own bearer token.
const (
	RegisterPath  = "/api/v1/agent/register"
	HeartbeatPath = "/api/v1/agent/heartbeat"
)

// Report is the body of the agent's register and heartbeat calls.
type Report struct {
	MachineID string `json:"machine_id,omitempty"`
	Address   string `json:"address,omitempty"`
	Size      string `json:"size,omitempty"`
	// UptimeSeconds is how long the agent has run, with its fraction.
	UptimeSeconds float64 `json:"uptime_seconds,omitempty"`
	// Version is the agent's version (klient.Version).
	Version string `json:"version,omitempty"`
	// ActiveAt is when the machine last saw user activity, if the agent
	// knows: now while a terminal is attached or the machine works (Busy),
	// else the last terminal input.
	ActiveAt *time.Time `json:"active_at,omitempty"`
	// Sessions counts the terminal sessions attached now; InputAt is the
	// last terminal input; Busy is the configured sign of work (CPU use
	// above the agent's -busy-cpu threshold since the last heartbeat).
	Sessions int        `json:"sessions,omitempty"`
	InputAt  *time.Time `json:"input_at,omitempty"`
	Busy     bool       `json:"busy,omitempty"`
}

// UnmarshalJSON decodes a report ignoring fields it does not know, even
// for a strict decoder: a newer agent's additions must not make an older
// server refuse its heartbeats, so agents and servers upgrade
// independently. A known field of the wrong type is still an error.
func (r *Report) UnmarshalJSON(b []byte) error {
	type plain Report
	return json.Unmarshal(b, (*plain)(r))
}

// MaxVersion bounds Report.Version; a longer one is refused.
const MaxVersion = 64

// Ack is Kloud's answer to a register or heartbeat.
type Ack struct {
	MachineID string `json:"machine_id"`
	State     string `json:"state"`
	// HeartbeatSeconds, when positive, is the interval Kloud wants between
	// heartbeats; the agent uses it in place of its own setting, so the
	// server that judges silence also sets the pace.
	HeartbeatSeconds float64 `json:"heartbeat_seconds,omitempty"`
}

// Interval is the heartbeat interval the ack asks for, zero for none.
func (a Ack) Interval() time.Duration {
	if a.HeartbeatSeconds <= 0 || a.HeartbeatSeconds > 24*3600 {
		return 0
	}
	return time.Duration(a.HeartbeatSeconds * float64(time.Second))
}
