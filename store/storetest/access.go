package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/kloud/kloud/store"
)

var tunnelCases = []testCase{
	{"PutGetReplaceDelete", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		_, err := s.GetTunnel(ctx, "m-1")
		is(t, err, store.ErrNotFound, "tunnel of a machine never connected")
		ok(t, s.PutTunnel(ctx, &store.Tunnel{MachineID: "m-1", Replica: "http://r1:8080", ConnID: "c1", ConnectedAt: t0}))
		got, err := s.GetTunnel(ctx, "m-1")
		ok(t, err)
		eq(t, "replica", got.Replica, "http://r1:8080")
		eq(t, "conn id", got.ConnID, "c1")
		sameTime(t, "connected at", got.ConnectedAt, t0)
		// The agent reconnects to another replica: the record moves.
		ok(t, s.PutTunnel(ctx, &store.Tunnel{MachineID: "m-1", Replica: "http://r2:8080", ConnID: "c2", ConnectedAt: t0.Add(time.Second)}))
		// The first replica notices its connection dropped: it must not
		// remove the newer record.
		ok(t, s.DeleteTunnel(ctx, "m-1", "c1"))
		got, err = s.GetTunnel(ctx, "m-1")
		ok(t, err)
		eq(t, "replica after a stale delete", got.Replica, "http://r2:8080")
		ok(t, s.DeleteTunnel(ctx, "m-1", "c2"))
		_, err = s.GetTunnel(ctx, "m-1")
		is(t, err, store.ErrNotFound, "tunnel after its holder's delete")
		ok(t, s.DeleteTunnel(ctx, "m-1", "c2")) // again: nothing to do
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		is(t, s.PutTunnel(ctx, nil), store.ErrInvalid, "nil tunnel")
		is(t, s.PutTunnel(ctx, &store.Tunnel{Replica: "r", ConnID: "c"}), store.ErrInvalid, "tunnel without machine")
		is(t, s.PutTunnel(ctx, &store.Tunnel{MachineID: "m", ConnID: "c"}), store.ErrInvalid, "tunnel without replica")
		is(t, s.PutTunnel(ctx, &store.Tunnel{MachineID: "m", Replica: "r"}), store.ErrInvalid, "tunnel without connection")
		_, err := s.GetTunnel(ctx, "")
		is(t, err, store.ErrInvalid, "get tunnel of empty id")
	}},
}

var shareCases = []testCase{
	{"PutListUpdateDelete", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		a := &store.Share{MachineID: "m-1", UserID: "usr-2", OwnerID: "usr-1", Permission: store.PermUse, CreatedBy: "usr-1", CreatedAt: t0}
		ok(t, s.PutShare(ctx, a))
		sameTime(t, "created at", a.CreatedAt, t0)
		ok(t, s.PutShare(ctx, &store.Share{MachineID: "m-1", UserID: "usr-3", OwnerID: "usr-1", Permission: store.PermControl, CreatedBy: "usr-adm", CreatedAt: t0.Add(time.Second)}))
		ok(t, s.PutShare(ctx, &store.Share{MachineID: "m-2", UserID: "usr-2", OwnerID: "usr-1", Permission: store.PermControl, CreatedBy: "usr-1", CreatedAt: t0.Add(2 * time.Second)}))

		got, err := s.GetShare(ctx, "m-1", "usr-2")
		ok(t, err)
		eq(t, "permission", got.Permission, store.PermUse)
		eq(t, "owner", got.OwnerID, "usr-1")
		eq(t, "created by", got.CreatedBy, "usr-1")
		sameTime(t, "created at", got.CreatedAt, t0)

		ms, err := s.ListShares(ctx, "m-1")
		ok(t, err)
		if len(ms) != 2 || ms[0].UserID != "usr-2" || ms[1].UserID != "usr-3" {
			t.Fatalf("shares of m-1 = %+v, want usr-2 then usr-3", ms)
		}
		us, err := s.ListUserShares(ctx, "usr-2")
		ok(t, err)
		if len(us) != 2 || us[0].MachineID != "m-1" || us[1].MachineID != "m-2" {
			t.Fatalf("shares of usr-2 = %+v, want m-1 then m-2", us)
		}
		none, err := s.ListUserShares(ctx, "usr-9")
		ok(t, err)
		eq(t, "shares of a user with none", len(none), 0)

		// Sharing again changes the permission and keeps the first time.
		up := &store.Share{MachineID: "m-1", UserID: "usr-2", OwnerID: "usr-1", Permission: store.PermControl, CreatedBy: "usr-1", CreatedAt: t0.Add(time.Hour)}
		ok(t, s.PutShare(ctx, up))
		sameTime(t, "created at after an update", up.CreatedAt, t0)
		got, err = s.GetShare(ctx, "m-1", "usr-2")
		ok(t, err)
		eq(t, "permission after an update", got.Permission, store.PermControl)

		ok(t, s.DeleteShare(ctx, "m-1", "usr-2"))
		_, err = s.GetShare(ctx, "m-1", "usr-2")
		is(t, err, store.ErrNotFound, "deleted share")
		is(t, s.DeleteShare(ctx, "m-1", "usr-2"), store.ErrNotFound, "delete again")
		ms, err = s.ListShares(ctx, "m-1")
		ok(t, err)
		eq(t, "shares of m-1 after a delete", len(ms), 1)
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		is(t, s.PutShare(ctx, nil), store.ErrInvalid, "nil share")
		is(t, s.PutShare(ctx, &store.Share{UserID: "u", Permission: store.PermUse}), store.ErrInvalid, "share without machine")
		is(t, s.PutShare(ctx, &store.Share{MachineID: "m", Permission: store.PermUse}), store.ErrInvalid, "share without user")
		is(t, s.PutShare(ctx, &store.Share{MachineID: "m", UserID: "u", Permission: "admin"}), store.ErrInvalid, "share with a bad permission")
		_, err := s.GetShare(ctx, "", "u")
		is(t, err, store.ErrInvalid, "get share of empty machine")
		_, err = s.ListUserShares(ctx, "")
		is(t, err, store.ErrInvalid, "list shares of empty user")
		is(t, s.DeleteShare(ctx, "m", ""), store.ErrInvalid, "delete share of empty user")
	}},
}

var activityCases = []testCase{
	{"TouchNeverMovesBack", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ok(t, s.PutMachine(ctx, newMachine("m-1", "usr-1", "stk-1")))
		ok(t, s.PutMachine(ctx, newMachine("m-2", "usr-1", "stk-1")))
		m, err := s.GetMachine(ctx, "m-1")
		ok(t, err)
		if !m.LastActivity.IsZero() {
			t.Fatalf("last activity of a new machine = %v, want zero", m.LastActivity)
		}
		ok(t, s.TouchMachineActivity(ctx, "m-1", t0.Add(time.Minute)))
		ok(t, s.TouchMachineActivity(ctx, "m-1", t0)) // older: ignored
		m, err = s.GetMachine(ctx, "m-1")
		ok(t, err)
		sameTime(t, "last activity", m.LastActivity, t0.Add(time.Minute))
		if !m.LastSeen.IsZero() {
			t.Errorf("activity set last seen to %v", m.LastSeen)
		}
		// The agent's heartbeat after activity still records last-seen.
		ok(t, s.TouchMachine(ctx, "m-1", t0.Add(2*time.Minute), "v1"))
		ms, err := s.ListMachines(ctx, store.MachineFilter{OwnerID: "usr-1"})
		ok(t, err)
		eq(t, "machines", len(ms), 2)
		sameTime(t, "listed last activity", ms[0].LastActivity, t0.Add(time.Minute))
		sameTime(t, "listed last seen", ms[0].LastSeen, t0.Add(2*time.Minute))
		if !ms[1].LastActivity.IsZero() {
			t.Errorf("m-2 last activity = %v, want zero", ms[1].LastActivity)
		}
		is(t, s.TouchMachineActivity(ctx, "m-9", t0), store.ErrNotFound, "activity of a missing machine")
		is(t, s.TouchMachineActivity(ctx, "", t0), store.ErrInvalid, "activity of an empty id")
	}},
}

var sessionCases = []testCase{
	{"OpenCloseList", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		a := &store.TerminalSession{ID: "term-a", MachineID: "m-1", UserID: "usr-2", OwnerID: "usr-1", Name: "work", Replica: "http://r1", OpenedAt: t0}
		ok(t, s.PutTerminalSession(ctx, a))
		is(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "term-a", MachineID: "m-1", UserID: "usr-2", OpenedAt: t0}), store.ErrConflict, "a taken session id")
		ok(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "term-b", MachineID: "m-1", UserID: "usr-1", OwnerID: "usr-1", OpenedAt: t0.Add(time.Second)}))
		ok(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "term-c", MachineID: "m-2", UserID: "usr-1", OwnerID: "usr-1", OpenedAt: t0}))

		open, err := s.ListTerminalSessions(ctx, "m-1", true)
		ok(t, err)
		if len(open) != 2 || open[0].ID != "term-a" || open[1].ID != "term-b" {
			t.Fatalf("open sessions of m-1 = %+v", open)
		}
		eq(t, "name", open[0].Name, "work")
		eq(t, "replica", open[0].Replica, "http://r1")
		eq(t, "owner", open[0].OwnerID, "usr-1")
		sameTime(t, "opened at", open[0].OpenedAt, t0)
		if !open[0].ClosedAt.IsZero() || open[0].ExitCode != nil {
			t.Errorf("an open session = %+v, want no close time or exit code", open[0])
		}

		three := 3
		ok(t, s.CloseTerminalSession(ctx, "term-a", t0.Add(time.Minute), &three))
		ok(t, s.CloseTerminalSession(ctx, "term-a", t0.Add(time.Hour), nil)) // again: no change
		ok(t, s.CloseTerminalSession(ctx, "term-b", t0.Add(2*time.Minute), nil))
		is(t, s.CloseTerminalSession(ctx, "term-nope", t0, nil), store.ErrNotFound, "closing a missing session")

		open, err = s.ListTerminalSessions(ctx, "m-1", true)
		ok(t, err)
		eq(t, "open sessions after closing", len(open), 0)
		all, err := s.ListTerminalSessions(ctx, "m-1", false)
		ok(t, err)
		if len(all) != 2 {
			t.Fatalf("sessions of m-1 = %+v", all)
		}
		sameTime(t, "closed at", all[0].ClosedAt, t0.Add(time.Minute))
		if all[0].ExitCode == nil || *all[0].ExitCode != 3 {
			t.Errorf("exit code = %v, want 3", all[0].ExitCode)
		}
		if all[1].ExitCode != nil {
			t.Errorf("exit code of a session without one = %v", *all[1].ExitCode)
		}

		// A replica starting again closes what its previous life left open.
		ok(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "term-d", MachineID: "m-2", UserID: "usr-1", Replica: "http://r1", OpenedAt: t0}))
		ok(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "term-e", MachineID: "m-2", UserID: "usr-1", Replica: "http://r2", OpenedAt: t0}))
		n, err := s.CloseReplicaSessions(ctx, "http://r1", t0.Add(time.Hour))
		ok(t, err)
		eq(t, "sessions closed for r1", n, int64(1))
		open, err = s.ListTerminalSessions(ctx, "m-2", true)
		ok(t, err)
		if len(open) != 2 || open[0].ID != "term-c" || open[1].ID != "term-e" {
			t.Fatalf("open sessions of m-2 = %+v, want term-c and term-e", open)
		}
		_, err = s.CloseReplicaSessions(ctx, "", t0)
		is(t, err, store.ErrInvalid, "closing the sessions of an empty replica")
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		is(t, s.PutTerminalSession(ctx, nil), store.ErrInvalid, "nil session")
		is(t, s.PutTerminalSession(ctx, &store.TerminalSession{MachineID: "m", UserID: "u", OpenedAt: t0}), store.ErrInvalid, "session without id")
		is(t, s.PutTerminalSession(ctx, &store.TerminalSession{ID: "x", MachineID: "m", UserID: "u"}), store.ErrInvalid, "session without a time")
		is(t, s.CloseTerminalSession(ctx, "", t0, nil), store.ErrInvalid, "closing an empty id")
		_, err := s.ListTerminalSessions(ctx, "", false)
		is(t, err, store.ErrInvalid, "listing an empty machine")
	}},
}
