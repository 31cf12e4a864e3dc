package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

func newMachine(id, owner, stackID string) *stack.Machine {
	return &stack.Machine{ID: id, StackID: stackID, OwnerID: owner, Provider: "sandbox",
		Label: "sandbox_machine." + id, State: machinestate.NotInitialized, CreatedAt: t0}
}

var machineCases = []testCase{
	{"Uptime", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		m := &stack.Machine{StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", Label: "sandbox_machine.up",
			State: machinestate.Running, CreatedAt: t0}
		ok(t, s.PutMachine(ctx, m))
		sameTime(t, "state_since of a new machine", m.StateSince, t0)
		eq(t, "uptime after 30 min", m.Uptime(t0.Add(30*time.Minute)), 30*time.Minute)
		steps := []struct {
			state machinestate.State
			at    time.Duration
		}{
			{machinestate.Stopping, time.Hour},
			{machinestate.Stopped, time.Hour + time.Minute},
			{machinestate.Starting, 3 * time.Hour},
			{machinestate.Running, 3*time.Hour + time.Minute},
		}
		for _, st := range steps {
			ok(t, s.SetMachineState(ctx, m.ID, st.state, "", t0.Add(st.at)))
		}
		got, err := s.GetMachine(ctx, m.ID)
		ok(t, err)
		sameTime(t, "state_since", got.StateSince, t0.Add(3*time.Hour+time.Minute))
		eq(t, "uptime base", got.UptimeBase, time.Hour)
		eq(t, "uptime at 4h", got.Uptime(t0.Add(4*time.Hour)), time.Hour+59*time.Minute)
		// A change dated before the current state began counts no time.
		ok(t, s.SetMachineState(ctx, m.ID, machinestate.Stopped, "silent", t0.Add(2*time.Hour)))
		got, err = s.GetMachine(ctx, m.ID)
		ok(t, err)
		eq(t, "uptime after a backdated stop", got.Uptime(t0.Add(10*time.Hour)), time.Hour)
		list, err := s.ListMachines(ctx, store.MachineFilter{StackID: "stk-1"})
		ok(t, err)
		eq(t, "listed uptime base", list[0].UptimeBase, time.Hour)
	}},
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		m := &stack.Machine{StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", Label: "sandbox_machine.web[0]",
			State: machinestate.Running, Reason: "built", AlwaysOn: true, Metadata: []byte(`{"size":"small","region":"local"}`),
			AgentTokenHash: "agent-hash-1", CreatedAt: t0}
		ok(t, s.PutMachine(ctx, m))
		hasPrefix(t, "machine", m.ID, "m-")
		got, err := s.GetMachine(ctx, m.ID)
		ok(t, err)
		eq(t, "stack", got.StackID, "stk-1")
		eq(t, "owner", got.OwnerID, "usr-1")
		eq(t, "provider", got.Provider, "sandbox")
		eq(t, "label", got.Label, "sandbox_machine.web[0]")
		eq(t, "state", got.State, machinestate.Running)
		eq(t, "reason", got.Reason, "built")
		eq(t, "always_on", got.AlwaysOn, true)
		eq(t, "metadata", string(got.Metadata), `{"size":"small","region":"local"}`)
		eq(t, "agent token hash", got.AgentTokenHash, "agent-hash-1")
		sameTime(t, "created_at", got.CreatedAt, t0)
		if !got.LastSeen.IsZero() {
			t.Errorf("last_seen = %v, want zero", got.LastSeen)
		}
		hist, err := s.MachineHistory(ctx, m.ID)
		ok(t, err)
		if len(hist) != 1 || hist[0].State != machinestate.Running || hist[0].Reason != "built" || hist[0].MachineID != m.ID {
			t.Fatalf("history of a new machine = %v, want its state at creation", hist)
		}
		sameTime(t, "first record", hist[0].At, t0)
		byToken, err := s.GetMachineByAgentTokenHash(ctx, "agent-hash-1")
		ok(t, err)
		eq(t, "machine by agent token", byToken.ID, m.ID)
		_, err = s.GetMachine(ctx, "m-missing")
		is(t, err, store.ErrNotFound, "GetMachine")
		_, err = s.GetMachineByAgentTokenHash(ctx, "nope")
		is(t, err, store.ErrNotFound, "GetMachineByAgentTokenHash")
	}},
	{"PutReplacesFieldsNotState", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		m := newMachine("m-1", "usr-1", "stk-1")
		m.State, m.AgentTokenHash = machinestate.Running, "h1"
		ok(t, s.PutMachine(ctx, m))
		upd := newMachine("m-1", "usr-1", "stk-1")
		upd.State, upd.Reason = machinestate.Stopped, "ignored"
		upd.Label, upd.AlwaysOn, upd.Metadata, upd.AgentTokenHash = "renamed", true, []byte(`{"size":"large"}`), "h2"
		ok(t, s.PutMachine(ctx, upd))
		eq(t, "state put back into the record", upd.State, machinestate.Running)
		got, err := s.GetMachine(ctx, "m-1")
		ok(t, err)
		eq(t, "state", got.State, machinestate.Running)
		eq(t, "reason", got.Reason, "")
		eq(t, "label", got.Label, "renamed")
		eq(t, "always_on", got.AlwaysOn, true)
		eq(t, "metadata", string(got.Metadata), `{"size":"large"}`)
		eq(t, "agent token hash", got.AgentTokenHash, "h2")
		_, err = s.GetMachineByAgentTokenHash(ctx, "h1")
		is(t, err, store.ErrNotFound, "old agent token")
		hist, err := s.MachineHistory(ctx, "m-1")
		ok(t, err)
		eq(t, "history records after a replace", len(hist), 1)
	}},
	{"AgentTokenHashUnique", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		a, b := newMachine("m-a", "usr-1", "stk-1"), newMachine("m-b", "usr-1", "stk-1")
		a.AgentTokenHash, b.AgentTokenHash = "same", "same"
		ok(t, s.PutMachine(ctx, a))
		is(t, s.PutMachine(ctx, b), store.ErrConflict, "second machine with the same agent token hash")
		// Machines without an agent token do not collide.
		ok(t, s.PutMachine(ctx, newMachine("m-c", "usr-1", "stk-1")))
		ok(t, s.PutMachine(ctx, newMachine("m-d", "usr-1", "stk-1")))
	}},
	{"List", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for _, m := range []*stack.Machine{newMachine("m-3", "usr-1", "stk-1"), newMachine("m-1", "usr-1", "stk-2"),
			newMachine("m-2", "usr-2", "stk-3")} {
			ok(t, s.PutMachine(ctx, m))
		}
		cases := []struct {
			f    store.MachineFilter
			want []string
		}{
			{store.MachineFilter{}, []string{"m-1", "m-2", "m-3"}},
			{store.MachineFilter{OwnerID: "usr-1"}, []string{"m-1", "m-3"}},
			{store.MachineFilter{StackID: "stk-3"}, []string{"m-2"}},
			{store.MachineFilter{OwnerID: "usr-1", StackID: "stk-1"}, []string{"m-3"}},
			{store.MachineFilter{OwnerID: "usr-2", StackID: "stk-1"}, nil},
			{store.MachineFilter{OwnerID: "nobody"}, nil},
		}
		for _, c := range cases {
			got, err := s.ListMachines(ctx, c.f)
			ok(t, err)
			ids := []string{}
			for _, m := range got {
				ids = append(ids, m.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, c.want) && !(len(ids) == 0 && len(c.want) == 0) {
				t.Errorf("ListMachines(%+v) = %v, want %v", c.f, ids, c.want)
			}
		}
	}},
	{"SetState", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		steps := []struct {
			state  machinestate.State
			reason string
			at     time.Duration
		}{
			{machinestate.Building, "", time.Second},
			{machinestate.Running, "", 2 * time.Second},
			{machinestate.Running, "", 3 * time.Second}, // same state and reason: nothing appended
			{machinestate.Running, "agent back", 4 * time.Second},
			{machinestate.Stopped, "agent silent", 5 * time.Second},
		}
		for _, st := range steps {
			ok(t, s.SetMachineState(ctx, "m-1", st.state, st.reason, t0.Add(st.at)))
		}
		got, err := s.GetMachine(ctx, "m-1")
		ok(t, err)
		eq(t, "state", got.State, machinestate.Stopped)
		eq(t, "reason", got.Reason, "agent silent")
		hist, err := s.MachineHistory(ctx, "m-1")
		ok(t, err)
		want := []stack.StateRecord{
			{MachineID: "m-1", State: machinestate.NotInitialized, At: t0},
			{MachineID: "m-1", State: machinestate.Building, At: t0.Add(time.Second)},
			{MachineID: "m-1", State: machinestate.Running, At: t0.Add(2 * time.Second)},
			{MachineID: "m-1", State: machinestate.Running, Reason: "agent back", At: t0.Add(4 * time.Second)},
			{MachineID: "m-1", State: machinestate.Stopped, Reason: "agent silent", At: t0.Add(5 * time.Second)},
		}
		sameRecords(t, "history", hist, want)
		is(t, s.SetMachineState(ctx, "m-missing", machinestate.Running, "", t0), store.ErrNotFound, "set state of missing machine")
	}},
	{"HistoryKeepsRecordOrderAtEqualTimes", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		at := t0.Add(time.Minute)
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Building, "", at))
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Running, "", at))
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Stopping, "", at))
		hist, err := s.MachineHistory(ctx, "m-1")
		ok(t, err)
		var states []machinestate.State
		for _, r := range hist {
			states = append(states, r.State)
		}
		want := []machinestate.State{machinestate.NotInitialized, machinestate.Building, machinestate.Running, machinestate.Stopping}
		if !slices.Equal(states, want) {
			t.Errorf("states = %v, want %v", states, want)
		}
	}},
	{"Touch", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		ok(t, s.PutMachine(ctx, newMachine("m-2", "usr-1", "stk-1")))
		ok(t, s.TouchMachine(ctx, "m-1", t0.Add(time.Minute), "0.1.0"))
		got, err := s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last_seen", got.LastSeen, t0.Add(time.Minute))
		eq(t, "agent version", got.AgentVersion, "0.1.0")
		ok(t, s.TouchMachine(ctx, "m-1", t0.Add(2*time.Minute), "0.2.0"))
		got, err = s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last_seen", got.LastSeen, t0.Add(2*time.Minute))
		eq(t, "agent version after upgrade", got.AgentVersion, "0.2.0")
		// An older touch (a late request) changes nothing.
		ok(t, s.TouchMachine(ctx, "m-1", t0.Add(90*time.Second), "0.1.0"))
		got, err = s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last_seen after an older touch", got.LastSeen, t0.Add(2*time.Minute))
		eq(t, "agent version after an older touch", got.AgentVersion, "0.2.0")
		// PutMachine keeps LastSeen and the version.
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		got, err = s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last_seen after put", got.LastSeen, t0.Add(2*time.Minute))
		eq(t, "agent version after put", got.AgentVersion, "0.2.0")
		// A state change keeps them too, and touching leaves the state
		// and the update time alone.
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Running, "up", t0.Add(3*time.Minute)))
		before, err := s.GetMachine(ctx, "m-1")
		ok(t, err)
		ok(t, s.TouchMachine(ctx, "m-1", t0.Add(4*time.Minute), "0.2.0"))
		got, err = s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last_seen after a state change", got.LastSeen, t0.Add(4*time.Minute))
		eq(t, "state after touch", got.State, machinestate.Running)
		sameTime(t, "updated_at after touch", got.UpdatedAt, before.UpdatedAt)
		// Lists and token lookups carry the agent too; an untouched
		// machine has none.
		list, err := s.ListMachines(ctx, store.MachineFilter{StackID: "stk-1"})
		ok(t, err)
		eq(t, "listed machines", len(list), 2)
		sameTime(t, "listed last_seen", list[0].LastSeen, t0.Add(4*time.Minute))
		eq(t, "listed agent version", list[0].AgentVersion, "0.2.0")
		if !list[1].LastSeen.IsZero() || list[1].AgentVersion != "" {
			t.Errorf("untouched machine agent = %v %q, want none", list[1].LastSeen, list[1].AgentVersion)
		}
		is(t, s.TouchMachine(ctx, "m-missing", t0, "0.1.0"), store.ErrNotFound, "touch missing machine")
		// A deleted machine takes its agent record with it.
		ok(t, s.DeleteMachine(ctx, "m-1"))
		is(t, s.TouchMachine(ctx, "m-1", t0.Add(5*time.Minute), "0.2.0"), store.ErrNotFound, "touch deleted machine")
	}},
	{"DeleteKeepsHistory", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Building, "", t0.Add(time.Second)))
		ok(t, s.DeleteMachine(ctx, "m-1"))
		_, err := s.GetMachine(ctx, "m-1")
		is(t, err, store.ErrNotFound, "get deleted machine")
		is(t, s.DeleteMachine(ctx, "m-1"), store.ErrNotFound, "delete twice")
		hist, err := s.MachineHistory(ctx, "m-1")
		ok(t, err)
		eq(t, "history records after delete", len(hist), 2)
	}},
}

func sameRecords(t *testing.T, what string, got, want []stack.StateRecord) {
	t.Helper()
	str := func(rs []stack.StateRecord) string {
		s := ""
		for _, r := range rs {
			s += fmt.Sprintf("\n  %s %v %q %s", r.MachineID, r.State, r.Reason, r.At.UTC().Format(time.RFC3339Nano))
		}
		return s
	}
	if len(got) != len(want) {
		t.Fatalf("%s:%s\nwant:%s", what, str(got), str(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.MachineID != w.MachineID || g.State != w.State || g.Reason != w.Reason || !g.At.Equal(w.At) || g.At.Location() != time.UTC {
			t.Fatalf("%s:%s\nwant:%s", what, str(got), str(want))
		}
	}
}

var historyCases = []testCase{
	{"Window", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		h := func(d time.Duration) time.Time { return t0.Add(d * time.Hour) }
		// m-a (usr-1): created 0h NotInitialized, Running 1h, Stopped 3h, Running 5h.
		// m-b (usr-1): created 2h Running (exactly at From), Stopped 4h (exactly at To).
		// m-c (usr-2): created 0h Running, Stopped 2.5h.
		// m-d (usr-1): created 6h, after the window: nothing.
		ma, mb, mc, md := newMachine("m-a", "usr-1", "stk-1"), newMachine("m-b", "usr-1", "stk-1"),
			newMachine("m-c", "usr-2", "stk-2"), newMachine("m-d", "usr-1", "stk-1")
		mb.State, mb.CreatedAt = machinestate.Running, h(2)
		mc.State = machinestate.Running
		md.CreatedAt = h(6)
		for _, m := range []*stack.Machine{md, mc, mb, ma} {
			ok(t, s.PutMachine(ctx, m))
		}
		ok(t, s.SetMachineState(ctx, "m-a", machinestate.Running, "", h(1)))
		ok(t, s.SetMachineState(ctx, "m-a", machinestate.Stopped, "", h(3)))
		ok(t, s.SetMachineState(ctx, "m-a", machinestate.Running, "", h(5)))
		ok(t, s.SetMachineState(ctx, "m-b", machinestate.Stopped, "", h(4)))
		ok(t, s.SetMachineState(ctx, "m-c", machinestate.Stopped, "agent silent: 3 × missed", t0.Add(150*time.Minute)))

		got, err := s.StateHistory(ctx, store.HistoryQuery{From: h(2), To: h(4)})
		ok(t, err)
		sameRecords(t, "all owners [2h, 4h)", got, []stack.StateRecord{
			{MachineID: "m-a", State: machinestate.Running, At: h(1)},
			{MachineID: "m-a", State: machinestate.Stopped, At: h(3)},
			{MachineID: "m-b", State: machinestate.Running, At: h(2)},
			{MachineID: "m-c", State: machinestate.Running, At: t0},
			{MachineID: "m-c", State: machinestate.Stopped, Reason: "agent silent: 3 × missed", At: t0.Add(150 * time.Minute)},
		})
		got, err = s.StateHistory(ctx, store.HistoryQuery{OwnerID: "usr-1", From: h(2), To: h(4)})
		ok(t, err)
		sameRecords(t, "usr-1 [2h, 4h)", got, []stack.StateRecord{
			{MachineID: "m-a", State: machinestate.Running, At: h(1)},
			{MachineID: "m-a", State: machinestate.Stopped, At: h(3)},
			{MachineID: "m-b", State: machinestate.Running, At: h(2)},
		})
		got, err = s.StateHistory(ctx, store.HistoryQuery{OwnerID: "usr-1", From: h(4), To: h(7)})
		ok(t, err)
		sameRecords(t, "usr-1 [4h, 7h)", got, []stack.StateRecord{
			{MachineID: "m-a", State: machinestate.Stopped, At: h(3)},
			{MachineID: "m-a", State: machinestate.Running, At: h(5)},
			{MachineID: "m-b", State: machinestate.Stopped, At: h(4)},
			{MachineID: "m-d", State: machinestate.NotInitialized, At: h(6)},
		})
		got, err = s.StateHistory(ctx, store.HistoryQuery{OwnerID: "nobody", From: h(0), To: h(9)})
		ok(t, err)
		sameRecords(t, "unknown owner", got, nil)
		got, err = s.StateHistory(ctx, store.HistoryQuery{OwnerID: "usr-2", From: h(-5), To: h(-1)})
		ok(t, err)
		sameRecords(t, "window before any record", got, nil)
	}},
	{"SameTimeRecordsOpenWithTheLast", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		at := t0.Add(time.Hour)
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Building, "", at))
		ok(t, s.SetMachineState(ctx, "m-1", machinestate.Running, "", at))
		got, err := s.StateHistory(ctx, store.HistoryQuery{From: at, To: at.Add(time.Hour)})
		ok(t, err)
		sameRecords(t, "window opening at two records' time", got, []stack.StateRecord{
			{MachineID: "m-1", State: machinestate.Running, At: at},
		})
	}},
}
