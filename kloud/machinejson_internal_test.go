package kloud

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/machinestate"
)

// sameAsEncodingJSON fails t unless appendMachines encodes vs as
// encoding/json does: the same bytes, or an error where it has one.
func sameAsEncodingJSON(t *testing.T, name string, vs []client.Machine) {
	t.Helper()
	want, wantErr := json.Marshal(vs)
	got, err := appendMachines([]byte("prefix"), vs)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Errorf("%s: error %v, encoding/json's %v", name, err, wantErr)
	case err == nil && !bytes.Equal(got, append([]byte("prefix"), want...)):
		t.Errorf("%s:\n got %s\nwant prefix%s", name, got, want)
	}
}

// TestMachineJSON: the hand-written encoding of machine lists is
// encoding/json's on every field of client.Machine, set and unset, and on
// the values encoding/json refuses.
func TestMachineJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 30, 45, 123456789, time.UTC)
	ptr := func(t time.Time) *time.Time { return &t }
	// full sets every field; the check below fails when a field is added
	// to client.Machine and not here (and so perhaps not to the encoder).
	full := client.Machine{
		ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Label: "sandbox_machine.web[0]", Provider: "sandbox",
		State: machinestate.Running, Reason: "started by usr-1", AlwaysOn: true,
		Metadata: json.RawMessage(`{"size":"small","region":"local"}`), UptimeSeconds: 86399,
		LastSeen:      ptr(at),
		Agent:         client.AgentStatus{Status: client.AgentConnected, LastSeenAt: ptr(at.Add(time.Second)), Version: "0.1.0"},
		NextAutostart: ptr(at.Add(time.Hour)), NextAutostop: ptr(at.Add(2 * time.Hour)), LastActivityAt: ptr(at.Add(-time.Minute)),
		Shared: true, Permission: "control",
	}
	for _, v := range []reflect.Value{reflect.ValueOf(full), reflect.ValueOf(full.Agent)} {
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Fatalf("the full machine leaves %s.%s unset: set it, and encode it in appendMachine", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	with := func(change func(m *client.Machine)) []client.Machine {
		m := full
		change(&m)
		return []client.Machine{m}
	}
	tests := []struct {
		name string
		vs   []client.Machine
	}{
		{"nil list", nil},
		{"empty list", []client.Machine{}},
		{"every field", []client.Machine{full}},
		{"every field unset", []client.Machine{{}}},
		{"two machines", []client.Machine{full, {ID: "m-2", State: machinestate.Stopped, Metadata: json.RawMessage(`{}`)}}},
		{"never heard from", with(func(m *client.Machine) {
			m.LastSeen, m.Agent = nil, client.AgentStatus{Status: client.AgentNever}
		})},
		{"strings to escape", with(func(m *client.Machine) {
			m.ID, m.Label, m.Reason = `m-"quoted"\back`, "<b>&amp;</b>\u2028\u2029", "tab\tnewline\n\x00\x1f"
			m.Agent.Version, m.Permission = "é ünïcode 日本", "\xff invalid utf-8"
		})},
		{"metadata with space", with(func(m *client.Machine) { m.Metadata = json.RawMessage(" {\n \"a\" : [1, 2] }\t") })},
		{"metadata with html", with(func(m *client.Machine) { m.Metadata = json.RawMessage(`{"a":"<&>"}`) })},
		{"metadata with line separators", with(func(m *client.Machine) { m.Metadata = json.RawMessage("{\"a\":\"\u2028\u2029é\"}") })},
		{"metadata a string", with(func(m *client.Machine) { m.Metadata = json.RawMessage(`"x"`) })},
		{"metadata nil", with(func(m *client.Machine) { m.Metadata = nil })},
		{"metadata empty", with(func(m *client.Machine) { m.Metadata = json.RawMessage{} })},
		{"metadata invalid", with(func(m *client.Machine) { m.Metadata = json.RawMessage(`{"a":`) })},
		{"metadata two values", with(func(m *client.Machine) { m.Metadata = json.RawMessage(`{} {}`) })},
		{"negative uptime", with(func(m *client.Machine) { m.UptimeSeconds = -5 })},
		{"invalid state", with(func(m *client.Machine) { m.State = machinestate.State(99) })},
		{"negative state", with(func(m *client.Machine) { m.State = machinestate.State(-1) })},
		{"times in a zone", with(func(m *client.Machine) {
			zone := time.FixedZone("x", 5*3600+30*60)
			m.LastSeen, m.NextAutostart = ptr(at.In(zone)), ptr(at.In(time.FixedZone("y", -7*3600)))
		})},
		{"whole seconds and zero time", with(func(m *client.Machine) {
			m.LastSeen, m.Agent.LastSeenAt = ptr(at.Truncate(time.Second)), ptr(time.Time{})
		})},
		{"year 10000", with(func(m *client.Machine) { m.NextAutostop = ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) })},
		{"year -1", with(func(m *client.Machine) { m.LastActivityAt = ptr(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)) })},
		{"zone of seconds", with(func(m *client.Machine) { m.LastSeen = ptr(at.In(time.FixedZone("s", 61))) })},
	}
	for _, tt := range tests {
		sameAsEncodingJSON(t, tt.name, tt.vs)
	}
}

// FuzzMachineJSON compares the two encodings on the values a user can set
// or a store can hold: strings, metadata, times and states.
func FuzzMachineJSON(f *testing.F) {
	f.Add("m-1", "sandbox_machine.web[0]", []byte(`{"size":"small"}`), int64(1764765045123456789), 0, 3)
	f.Add("<&>", "\u2028", []byte(" [1, \"\u2029\"] "), int64(-62135596800000000000/1e9), 7, -1)
	f.Add("\xff", "", []byte(`{"a":`), int64(0), 99, 0)
	f.Fuzz(func(t *testing.T, id, label string, meta []byte, nanos int64, state, zone int) {
		at := time.Unix(0, nanos).UTC()
		if zone != 0 {
			at = at.In(time.FixedZone("z", zone%100000))
		}
		m := client.Machine{ID: id, Label: label, Reason: label, State: machinestate.State(state), Metadata: meta,
			LastSeen: &at, Agent: client.AgentStatus{Status: id, LastSeenAt: &at, Version: label}, Permission: id}
		sameAsEncodingJSON(t, "fuzzed", []client.Machine{m})
	})
}
