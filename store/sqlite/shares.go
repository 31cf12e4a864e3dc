package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kloud/kloud/store"
)

// PutTunnel records which replica holds a machine's tunnel.
func (s *Store) PutTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := store.CheckTunnel(t); err != nil {
		return err
	}
	at := store.NowOr(s.now, t.ConnectedAt)
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO machine_tunnels (machine_id, replica, conn_id, connected_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (machine_id) DO UPDATE SET replica = excluded.replica, conn_id = excluded.conn_id, connected_at = excluded.connected_at`,
			t.MachineID, t.Replica, t.ConnID, at.UnixNano())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put tunnel of %s: %w", t.MachineID, err)
	}
	t.ConnectedAt = at
	return nil
}

// GetTunnel returns the machine's tunnel holder.
func (s *Store) GetTunnel(ctx context.Context, machineID string) (*store.Tunnel, error) {
	if err := store.CheckKey("get tunnel", "machine id", machineID); err != nil {
		return nil, err
	}
	var t store.Tunnel
	var at int64
	err := s.r.QueryRowContext(ctx, `SELECT machine_id, replica, conn_id, connected_at FROM machine_tunnels WHERE machine_id = ?`, machineID).
		Scan(&t.MachineID, &t.Replica, &t.ConnID, &at)
	if err != nil {
		return nil, fmt.Errorf("get tunnel: %w", noRows(err, "tunnel of machine "+machineID))
	}
	t.ConnectedAt = store.FromNanos(at)
	return &t, nil
}

// DeleteTunnel removes the machine's record while it is connID's.
func (s *Store) DeleteTunnel(ctx context.Context, machineID, connID string) error {
	if err := store.CheckKey("delete tunnel", "machine id", machineID); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM machine_tunnels WHERE machine_id = ? AND conn_id = ?`, machineID, connID)
		return mapErr(err)
	})
}

const shareCols = `machine_id, user_id, owner_id, permission, created_by, created_at`

func scanShare(sc scanner) (*store.Share, error) {
	var sh store.Share
	var at int64
	if err := sc.Scan(&sh.MachineID, &sh.UserID, &sh.OwnerID, &sh.Permission, &sh.CreatedBy, &at); err != nil {
		return nil, err
	}
	sh.CreatedAt = store.FromNanos(at)
	return &sh, nil
}

// PutShare creates a share or changes its permission.
func (s *Store) PutShare(ctx context.Context, sh *store.Share) error {
	if err := store.CheckShare(sh); err != nil {
		return err
	}
	at := store.NowOr(s.now, sh.CreatedAt)
	var stored int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO machine_shares (`+shareCols+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (machine_id, user_id) DO UPDATE SET permission = excluded.permission
			RETURNING created_at`, sh.MachineID, sh.UserID, sh.OwnerID, sh.Permission, sh.CreatedBy, at.UnixNano()).Scan(&stored)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put share of %s with %s: %w", sh.MachineID, sh.UserID, err)
	}
	sh.CreatedAt = store.FromNanos(stored)
	return nil
}

// GetShare returns one share.
func (s *Store) GetShare(ctx context.Context, machineID, userID string) (*store.Share, error) {
	if err := store.CheckKey("get share", "machine id", machineID); err != nil {
		return nil, err
	}
	if err := store.CheckKey("get share", "user id", userID); err != nil {
		return nil, err
	}
	sh, err := scanShare(s.r.QueryRowContext(ctx, `SELECT `+shareCols+` FROM machine_shares WHERE machine_id = ? AND user_id = ?`, machineID, userID))
	if err != nil {
		return nil, fmt.Errorf("get share: %w", noRows(err, "share of machine "+machineID+" with user "+userID))
	}
	return sh, nil
}

// ListShares returns a machine's shares, oldest first.
func (s *Store) ListShares(ctx context.Context, machineID string) ([]*store.Share, error) {
	if err := store.CheckKey("list shares", "machine id", machineID); err != nil {
		return nil, err
	}
	out, err := list(ctx, s.r, scanShare, `SELECT `+shareCols+` FROM machine_shares WHERE machine_id = ? ORDER BY created_at, user_id`, machineID)
	if err != nil {
		return nil, fmt.Errorf("list shares: %w", err)
	}
	return out, nil
}

// ListUserShares returns the shares granted to a user, oldest first.
func (s *Store) ListUserShares(ctx context.Context, userID string) ([]*store.Share, error) {
	if err := store.CheckKey("list user shares", "user id", userID); err != nil {
		return nil, err
	}
	out, err := list(ctx, s.r, scanShare, `SELECT `+shareCols+` FROM machine_shares WHERE user_id = ? ORDER BY created_at, machine_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list user shares: %w", err)
	}
	return out, nil
}

// DeleteShare removes a share.
func (s *Store) DeleteShare(ctx context.Context, machineID, userID string) error {
	if err := store.CheckKey("delete share", "machine id", machineID); err != nil {
		return err
	}
	if err := store.CheckKey("delete share", "user id", userID); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM machine_shares WHERE machine_id = ? AND user_id = ?`, machineID, userID)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "share of machine "+machineID+" with user "+userID)
	})
	if err != nil {
		return fmt.Errorf("delete share: %w", err)
	}
	return nil
}

// TouchMachineActivity records activity on a machine in its narrow
// machine_activity row; the time never moves back.
func (s *Store) TouchMachineActivity(ctx context.Context, id string, at time.Time) error {
	an, err := store.CheckTouch(id, store.NowOr(s.now, at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM machines WHERE id = ?`, id).Scan(&one); err != nil {
			return noRows(err, "machine "+id)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO machine_activity (machine_id, at) VALUES (?, ?)
			ON CONFLICT (machine_id) DO UPDATE SET at = max(at, excluded.at)`, id, an)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("touch activity of machine %s: %w", id, err)
	}
	return nil
}

const sessionCols = `id, machine_id, user_id, owner_id, name, replica, opened_at, closed_at, exit_code`

func scanSession(sc scanner) (*store.TerminalSession, error) {
	var ts store.TerminalSession
	var opened int64
	var closed, code sql.NullInt64
	if err := sc.Scan(&ts.ID, &ts.MachineID, &ts.UserID, &ts.OwnerID, &ts.Name, &ts.Replica, &opened, &closed, &code); err != nil {
		return nil, err
	}
	ts.OpenedAt, ts.ClosedAt = store.FromNanos(opened), fromNull(closed)
	if code.Valid {
		c := int(code.Int64)
		ts.ExitCode = &c
	}
	return &ts, nil
}

// PutTerminalSession records a session opened.
func (s *Store) PutTerminalSession(ctx context.Context, ts *store.TerminalSession) error {
	if err := store.CheckTerminalSession(ts); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO terminal_sessions (id, machine_id, user_id, owner_id, name, replica, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			ts.ID, ts.MachineID, ts.UserID, ts.OwnerID, ts.Name, ts.Replica, ts.OpenedAt.UnixNano())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put terminal session %s: %w", ts.ID, err)
	}
	ts.OpenedAt = ts.OpenedAt.UTC()
	return nil
}

// CloseTerminalSession records the end of a session, once.
func (s *Store) CloseTerminalSession(ctx context.Context, id string, at time.Time, exitCode *int) error {
	if err := store.CheckKey("close terminal session", "id", id); err != nil {
		return err
	}
	an := store.NowOr(s.now, at).UnixNano()
	var code sql.NullInt64
	if exitCode != nil {
		code = sql.NullInt64{Int64: int64(*exitCode), Valid: true}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM terminal_sessions WHERE id = ?`, id).Scan(&one); err != nil {
			return noRows(err, "terminal session "+id)
		}
		_, err := tx.ExecContext(ctx, `UPDATE terminal_sessions SET closed_at = ?, exit_code = ? WHERE id = ? AND closed_at IS NULL`, an, code, id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("close terminal session: %w", err)
	}
	return nil
}

// ListTerminalSessions returns a machine's sessions, oldest first.
func (s *Store) ListTerminalSessions(ctx context.Context, machineID string, openOnly bool) ([]*store.TerminalSession, error) {
	if err := store.CheckKey("list terminal sessions", "machine id", machineID); err != nil {
		return nil, err
	}
	q := `SELECT ` + sessionCols + ` FROM terminal_sessions WHERE machine_id = ?`
	if openOnly {
		q += ` AND closed_at IS NULL`
	}
	out, err := list(ctx, s.r, scanSession, q+` ORDER BY opened_at, id`, machineID)
	if err != nil {
		return nil, fmt.Errorf("list terminal sessions: %w", err)
	}
	return out, nil
}

// CloseReplicaSessions closes the sessions replica left open.
func (s *Store) CloseReplicaSessions(ctx context.Context, replica string, at time.Time) (int64, error) {
	if err := store.CheckKey("close replica sessions", "replica", replica); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE terminal_sessions SET closed_at = ? WHERE replica = ? AND closed_at IS NULL`, store.NowOr(s.now, at).UnixNano(), replica)
		if err != nil {
			return mapErr(err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("close sessions of replica %s: %w", replica, err)
	}
	return n, nil
}
