package checker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/checker"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T, clk *testenv.FakeClock) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), sqlite.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// providers is a provider that answers one state, and remembers what the
// checker asked and saved.
type providers struct {
	state machinestate.State
	err   error
	asked int
	saved []any
}

func (p *providers) Info(_ context.Context, m *stack.Machine) (machinestate.State, any, error) {
	p.asked++
	return p.state, map[string]string{"reported": p.state.String()}, p.err
}

func (p *providers) SaveMetadata(_ context.Context, m *stack.Machine, meta any) error {
	p.saved = append(p.saved, meta)
	return nil
}

// jobs is a job queue with one machine maybe busy, that remembers the stops
// queued.
type jobs struct {
	busy    bool
	stopErr error
	stops   []string // the notes of the stops queued
}

func (j *jobs) MachineBusy(context.Context, string) (bool, error) { return j.busy, nil }

func (j *jobs) QueueStop(_ context.Context, m *stack.Machine, note string) error {
	if j.stopErr != nil {
		return j.stopErr
	}
	j.stops = append(j.stops, note)
	return nil
}

// TestCheckMachines runs one check over one machine per case, on a real
// SQLite store with a fake clock: the agent timeout is 1m, the idle limit
// 1h, and the check runs at t0.
func TestCheckMachines(t *testing.T) {
	const timeout, idle = time.Minute, time.Hour
	silentSince := t0.Add(-2 * time.Minute)
	tests := []struct {
		name     string
		state    machinestate.State
		created  time.Duration // before t0: when it entered its state
		seen     time.Duration // before t0: when its agent was last heard (0: never)
		active   time.Duration // before t0: when it was last in use (0: never)
		alwaysOn bool
		noIdle   bool // no idle limit
		provider providers
		jobs     jobs

		wantState  machinestate.State
		wantReason string // "" when unchanged
		wantSince  time.Time
		wantAsked  bool
		wantSaved  bool
		wantStop   string // the note of the stop queued ("" none)
		wantLog    string // an error logged ("" none)
	}{
		{name: "heard within the timeout", state: machinestate.Running, created: 2 * time.Hour, seen: 30 * time.Second, alwaysOn: true,
			wantState: machinestate.Running},
		{name: "never heard, built within the timeout", state: machinestate.Running, created: 30 * time.Second,
			wantState: machinestate.Running},
		{name: "silent, the provider confirms it stopped", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute, alwaysOn: true,
			provider:  providers{state: machinestate.Stopped},
			wantState: machinestate.Stopped, wantReason: "agent silent since 2026-12-03T11:58:00Z; provider reports Stopped", wantSince: silentSince,
			wantAsked: true, wantSaved: true},
		{name: "silent, the provider reports it terminated", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute, alwaysOn: true,
			provider:  providers{state: machinestate.Terminated},
			wantState: machinestate.Terminated, wantReason: "agent silent since 2026-12-03T11:58:00Z; provider reports Terminated", wantSince: silentSince,
			wantAsked: true, wantSaved: true},
		{name: "silent, the provider reports it stopping", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute, alwaysOn: true,
			provider:  providers{state: machinestate.Stopping},
			wantState: machinestate.Stopped, wantReason: "agent silent since 2026-12-03T11:58:00Z; provider reports Stopping", wantSince: silentSince,
			wantAsked: true, wantSaved: true},
		{name: "never heard, built past the timeout", state: machinestate.Running, created: 5 * time.Minute, alwaysOn: true,
			provider:  providers{state: machinestate.Stopped},
			wantState: machinestate.Stopped, wantReason: "agent silent since 2026-12-03T11:55:00Z; provider reports Stopped", wantSince: t0.Add(-5 * time.Minute),
			wantAsked: true, wantSaved: true},
		{name: "silent, but the provider says it runs", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute, alwaysOn: true,
			provider:  providers{state: machinestate.Running},
			wantState: machinestate.Running, wantAsked: true},
		{name: "silent, but a job holds it", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute,
			jobs:      jobs{busy: true},
			wantState: machinestate.Running},
		{name: "silent, the provider fails", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute,
			provider:  providers{err: errors.New("cloud unreachable")},
			wantState: machinestate.Running, wantAsked: true, wantLog: "check silent machine"},
		{name: "stopped machines are not checked", state: machinestate.Stopped, created: 2 * time.Hour, seen: 2 * time.Hour,
			wantState: machinestate.Stopped},
		{name: "idle past the limit", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second,
			wantState: machinestate.Running, wantReason: "idle past the limit of 1h0m0s; stopped by the checker",
			wantStop: "machine m-1 running for 2h0m0s (idle limit 1h0m0s); stopping"},
		{name: "silent, the provider says it runs, idle past the limit", state: machinestate.Running, created: 2 * time.Hour, seen: 2 * time.Minute,
			provider:  providers{state: machinestate.Running},
			wantState: machinestate.Running, wantReason: "idle past the limit of 1h0m0s; stopped by the checker", wantAsked: true,
			wantStop: "machine m-1 running for 2h0m0s (idle limit 1h0m0s); stopping"},
		{name: "idle within the limit", state: machinestate.Running, created: 30 * time.Minute, seen: 10 * time.Second,
			wantState: machinestate.Running},
		{name: "always_on is never idle", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second, alwaysOn: true,
			wantState: machinestate.Running},
		{name: "no idle limit", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second, noIdle: true,
			wantState: machinestate.Running},
		{name: "idle, a job already holds it", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second,
			jobs:      jobs{stopErr: store.ErrConflict},
			wantState: machinestate.Running, wantReason: "idle past the limit of 1h0m0s; stopped by the checker"},
		{name: "in use within the limit, though running past it", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second, active: 10 * time.Minute,
			wantState: machinestate.Running},
		{name: "unused past the limit since its last activity", state: machinestate.Running, created: 3 * time.Hour, seen: 10 * time.Second, active: 2 * time.Hour,
			wantState: machinestate.Running, wantReason: "idle past the limit of 1h0m0s; stopped by the checker",
			wantStop: "machine m-1 unused for 2h0m0s, since 2026-12-03T10:00:00Z (idle limit 1h0m0s); stopping"},
		{name: "idle, the stop fails", state: machinestate.Running, created: 2 * time.Hour, seen: 10 * time.Second,
			jobs:      jobs{stopErr: errors.New("queue closed")},
			wantState: machinestate.Running, wantReason: "idle past the limit of 1h0m0s; stopped by the checker", wantLog: "check idle machine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clk := testenv.NewFakeClock(t0.Add(-tt.created))
			st := openStore(t, clk)
			m := &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", Label: "sandbox_machine.web",
				State: tt.state, AlwaysOn: tt.alwaysOn, CreatedAt: clk.Now()}
			if err := st.PutMachine(ctx, m); err != nil {
				t.Fatal(err)
			}
			if tt.seen > 0 {
				if err := st.TouchMachine(ctx, m.ID, t0.Add(-tt.seen), "0.1.0"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.active > 0 {
				if err := st.TouchMachineActivity(ctx, m.ID, t0.Add(-tt.active)); err != nil {
					t.Fatal(err)
				}
			}
			clk.Set(t0)
			var logs bytes.Buffer
			limit := idle
			if tt.noIdle {
				limit = 0
			}
			c := checker.New(checker.Config{
				Machines: st, Providers: &tt.provider, Jobs: &tt.jobs,
				AgentTimeout: timeout, IdleLimit: limit, Now: clk.Now,
				Log: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err := c.CheckMachines(ctx); err != nil {
				t.Fatal(err)
			}

			got, err := st.GetMachine(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.wantState || got.Reason != tt.wantReason {
				t.Errorf("machine = %s (%q), want %s (%q)", got.State, got.Reason, tt.wantState, tt.wantReason)
			}
			if !tt.wantSince.IsZero() && !got.StateSince.Equal(tt.wantSince) {
				t.Errorf("state since %v, want %v (when the agent was last heard)", got.StateSince, tt.wantSince)
			}
			if asked := tt.provider.asked > 0; asked != tt.wantAsked {
				t.Errorf("provider asked = %v, want %v", asked, tt.wantAsked)
			}
			if saved := len(tt.provider.saved) > 0; saved != tt.wantSaved {
				t.Errorf("metadata saved = %v (%v), want %v", saved, tt.provider.saved, tt.wantSaved)
			}
			var wantStops []string
			if tt.wantStop != "" {
				wantStops = []string{tt.wantStop}
			}
			if strings.Join(tt.jobs.stops, "|") != strings.Join(wantStops, "|") {
				t.Errorf("stops queued %q, want %q", tt.jobs.stops, wantStops)
			}
			errorsLogged := strings.Contains(logs.String(), "level=ERROR")
			if tt.wantLog == "" && errorsLogged || tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs:\n%s\nwant error %q", logs.String(), tt.wantLog)
			}
		})
	}
}

// TestCheckerRun: at each tick, the checker that holds the lease checks
// the machines; when its ticks end it gives the lease up.
func TestCheckerRun(t *testing.T) {
	ctx := context.Background()
	clk := testenv.NewFakeClock(t0.Add(-time.Hour))
	st := openStore(t, clk)
	m := &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", Label: "sandbox_machine.web",
		State: machinestate.Running, AlwaysOn: true, CreatedAt: clk.Now()}
	if err := st.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0)
	ticks := make(chan time.Time)
	var interval time.Duration
	p := &providers{state: machinestate.Stopped}
	c := checker.New(checker.Config{
		Machines: st, Providers: p, Jobs: &jobs{},
		AgentTimeout: time.Minute, Now: clk.Now,
		Leases: st, Holder: "replica-1", Interval: 30 * time.Second,
		Tick: func(d time.Duration) (<-chan time.Time, func()) { interval = d; return ticks, func() {} },
		Log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	ticks <- t0
	close(ticks) // the tick sent is handled, then Run returns
	<-done

	if interval != 30*time.Second {
		t.Errorf("ticker asked for a tick every %v, want the interval, 30s", interval)
	}
	got, err := st.GetMachine(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != machinestate.Stopped || !strings.HasPrefix(got.Reason, checker.ReasonAgentSilent) {
		t.Errorf("after a tick the silent machine is %s (%q), want Stopped: %s", got.State, got.Reason, checker.ReasonAgentSilent)
	}
	if c.Held(ctx) {
		t.Error("the checker still holds its lease after Run returned")
	}
	if l, err := st.GetLease(ctx, checker.LeaseName); err == nil && l.Holder == "replica-1" && l.Expires.After(t0) {
		t.Errorf("lease %+v not given up", l)
	}
	if len(p.saved) != 1 {
		t.Fatalf("saved metadata %v, want what the provider reported once", p.saved)
	}
	var meta map[string]string
	if b, _ := json.Marshal(p.saved[0]); json.Unmarshal(b, &meta) != nil || meta["reported"] != "Stopped" {
		t.Errorf("saved metadata %v, want what the provider reported", p.saved)
	}
}
