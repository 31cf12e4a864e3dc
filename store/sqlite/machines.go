package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// machineCols are the columns of machineFrom that scanMachine reads: the
// machine's row and its agent's narrow last-seen row (machine_agents).
const machineCols = `machines.id, stack_id, owner_id, provider, label, state, reason, always_on, metadata, coalesce(agent_token_hash, ''), a.last_seen, coalesce(a.version, ''), act.at, created_at, updated_at, state_since, uptime_base`

// machineFrom joins each machine to its agent's last-seen row.
const machineFrom = ` FROM machines LEFT JOIN machine_agents a ON a.machine_id = machines.id LEFT JOIN machine_activity act ON act.machine_id = machines.id`

func scanMachine(sc scanner) (*stack.Machine, error) {
	var m stack.Machine
	var state int64 // scanned as the driver gives it: an int would be formatted and parsed again
	var meta []byte
	var lastSeen, lastActivity sql.NullInt64
	var created, updated, since, base int64
	if err := sc.Scan(&m.ID, &m.StackID, &m.OwnerID, &m.Provider, &m.Label, &state, &m.Reason, &m.AlwaysOn, &meta, &m.AgentTokenHash, &lastSeen, &m.AgentVersion, &lastActivity, &created, &updated, &since, &base); err != nil {
		return nil, err
	}
	m.StateSince, m.UptimeBase = store.FromNanos(since), time.Duration(base)
	m.State = machinestate.State(state)
	if len(meta) > 0 {
		m.Metadata = json.RawMessage(meta)
	}
	m.LastSeen = fromNull(lastSeen)
	m.LastActivity = fromNull(lastActivity)
	m.CreatedAt, m.UpdatedAt = store.FromNanos(created), store.FromNanos(updated)
	return &m, nil
}

// PutMachine creates the machine, recording its State in its history at
// CreatedAt, or replaces the stored label, metadata, always_on and agent
// token hash of an existing one (its state is left alone). On return m holds
// the stored state, reason, times and last-seen.
func (s *Store) PutMachine(ctx context.Context, m *stack.Machine) error {
	w, err := store.CheckPutMachine(m, s.now())
	if err != nil {
		return err
	}
	id, cn, nn := w.ID, w.Created, w.Updated
	var meta any // NULL when empty
	if len(m.Metadata) > 0 {
		meta = string(m.Metadata)
	}
	var stored *stack.Machine
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE machines SET label = ?, metadata = ?, always_on = ?, agent_token_hash = ?, updated_at = ? WHERE id = ?`,
			m.Label, meta, m.AlwaysOn, nullStr(m.AgentTokenHash), nn, id)
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO machines (id, stack_id, owner_id, provider, label, state, reason, always_on, metadata, agent_token_hash, created_at, updated_at, state_since, uptime_base)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
				id, m.StackID, m.OwnerID, m.Provider, m.Label, int(m.State), m.Reason, m.AlwaysOn, meta, nullStr(m.AgentTokenHash), cn, nn, cn); err != nil {
				return mapErr(err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO machine_history (machine_id, state, reason, at) VALUES (?, ?, ?, ?)`,
				id, int(m.State), m.Reason, cn); err != nil {
				return mapErr(err)
			}
		}
		stored, err = scanMachine(tx.QueryRowContext(ctx, `SELECT `+machineCols+machineFrom+` WHERE machines.id = ?`, id))
		return err
	})
	if err != nil {
		return fmt.Errorf("put machine %s: %w", id, err)
	}
	m.ID = id
	m.State, m.Reason = stored.State, stored.Reason
	m.LastSeen, m.CreatedAt, m.UpdatedAt = stored.LastSeen, stored.CreatedAt, stored.UpdatedAt
	m.AgentVersion = stored.AgentVersion
	m.StateSince, m.UptimeBase = stored.StateSince, stored.UptimeBase
	return nil
}

// GetMachine returns the machine with id.
func (s *Store) GetMachine(ctx context.Context, id string) (*stack.Machine, error) {
	if err := store.CheckKey("get machine", "id", id); err != nil {
		return nil, err
	}
	m, err := scanMachine(s.hot.QueryRowContext(ctx, `SELECT `+machineCols+machineFrom+` WHERE machines.id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get machine: %w", noRows(err, "machine "+id))
	}
	return m, nil
}

// GetMachineByAgentTokenHash returns the machine whose agent token hashes to
// hash.
func (s *Store) GetMachineByAgentTokenHash(ctx context.Context, hash string) (*stack.Machine, error) {
	if err := store.CheckKey("get machine by agent token", "hash", hash); err != nil {
		return nil, err
	}
	m, err := scanMachine(s.r.QueryRowContext(ctx, `SELECT `+machineCols+machineFrom+` WHERE agent_token_hash = ?`, hash))
	if err != nil {
		return nil, fmt.Errorf("get machine by agent token: %w", noRows(err, "machine with that agent token"))
	}
	return m, nil
}

// ListMachines returns the machines the filter selects, ordered by id.
func (s *Store) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	var where []string
	var args []any
	if f.OwnerID != "" {
		where, args = append(where, "owner_id = ?"), append(args, f.OwnerID)
	}
	if f.StackID != "" {
		where, args = append(where, "stack_id = ?"), append(args, f.StackID)
	}
	if f.After != "" {
		where, args = append(where, "machines.id > ?"), append(args, f.After)
	}
	q := `SELECT ` + machineCols + machineFrom
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY machines.id`
	if f.Limit > 0 {
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	}
	out, err := list(ctx, s.hot, scanMachine, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	return out, nil
}

// SetMachineState sets state and reason and appends the change to the
// machine's history in one transaction; the same state and reason again is a
// no-op.
func (s *Store) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	an, err := store.CheckMachineState(id, state, s.nowOr(at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var cur int
		var curReason string
		err := tx.QueryRowContext(ctx, `SELECT state, reason FROM machines WHERE id = ?`, id).Scan(&cur, &curReason)
		if err != nil {
			return noRows(err, "machine "+id)
		}
		if machinestate.State(cur) == state && curReason == reason {
			return nil
		}
		// The time Running ends is added to uptime_base (the right-hand
		// columns are the old values); a change dated before the current
		// state began counts no time.
		if _, err := tx.ExecContext(ctx, `UPDATE machines SET state = ?1, reason = ?2, updated_at = ?3,
			uptime_base = uptime_base + CASE WHEN state = ?4 AND ?3 > state_since THEN ?3 - state_since ELSE 0 END,
			state_since = max(state_since, ?3)
			WHERE id = ?5`, int(state), reason, an, int(machinestate.Running), id); err != nil {
			return mapErr(err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO machine_history (machine_id, state, reason, at) VALUES (?, ?, ?, ?)`, id, int(state), reason, an)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("set machine %s state: %w", id, err)
	}
	return nil
}

// TouchMachine records that the machine's agent, of version, was heard
// from at at (now when zero), in the machine's narrow machine_agents row.
// LastSeen never moves back: an older touch changes nothing.
func (s *Store) TouchMachine(ctx context.Context, id string, at time.Time, version string) error {
	an, err := store.CheckTouch(id, s.nowOr(at))
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO machine_agents (machine_id, last_seen, version)
			SELECT id, ?1, ?2 FROM machines WHERE id = ?3
			ON CONFLICT (machine_id) DO UPDATE SET last_seen = excluded.last_seen, version = excluded.version
			WHERE excluded.last_seen >= machine_agents.last_seen`, an, version, id)
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		// Nothing written: no such machine, or a newer touch is stored.
		var one int
		return noRows(tx.QueryRowContext(ctx, `SELECT 1 FROM machines WHERE id = ?`, id).Scan(&one), "machine "+id)
	})
	if err != nil {
		return fmt.Errorf("touch machine %s: %w", id, err)
	}
	return nil
}

func scanRecord(sc scanner) (stack.StateRecord, error) {
	var r stack.StateRecord
	var state int
	var at int64
	if err := sc.Scan(&r.MachineID, &state, &r.Reason, &at); err != nil {
		return r, err
	}
	r.State = machinestate.State(state)
	r.At = store.FromNanos(at)
	return r, nil
}

// MachineHistory returns one machine's records in time order (in the order
// they were recorded for equal times); empty when it has none.
func (s *Store) MachineHistory(ctx context.Context, id string) ([]stack.StateRecord, error) {
	if err := store.CheckKey("machine history", "id", id); err != nil {
		return nil, err
	}
	out, err := list(ctx, s.r, scanRecord,
		`SELECT machine_id, state, reason, at FROM machine_history WHERE machine_id = ? ORDER BY at, id`, id)
	if err != nil {
		return nil, fmt.Errorf("machine %s history: %w", id, err)
	}
	return out, nil
}

// StateHistory returns, ordered by machine id then time, for every machine
// (of the owner, when given) in the machines table: its last record at or
// before From and every record inside (From, To). A zero From or To leaves
// that side of the window open. Deleted machines are not included.
func (s *Store) StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error) {
	from, to, err := store.HistoryWindow(q)
	if err != nil {
		return nil, err
	}
	args := []any{sql.Named("from", from), sql.Named("to", to)}
	owner := ""
	if q.OwnerID != "" {
		owner = "m.owner_id = @owner AND "
		args = append(args, sql.Named("owner", q.OwnerID))
	}
	// Machines drive the loop (CROSS JOIN fixes the order) in id order; per
	// machine, one range of the (machine_id, at, id) index from the time of
	// its last record at or before From to To. Each machine's records come
	// back as one string of "state at id reason-bytes reason" records: a
	// row crossing the driver costs far more than its text, and a month of
	// 10,000 machines is a million records. The index yields them in time
	// order; the decoder checks, and sorts a machine's records if not.
	query := `SELECT m.id, group_concat(h.state || ' ' || h.at || ' ' || h.id || ' ' || length(CAST(h.reason AS BLOB)) || ' ' || h.reason, ' ')
		FROM machines m CROSS JOIN machine_history h ON h.machine_id = m.id
		WHERE ` + owner + `h.at >= coalesce((SELECT h2.at FROM machine_history h2
			WHERE h2.machine_id = m.id AND h2.at <= @from ORDER BY h2.at DESC LIMIT 1), @from)
		AND h.at < @to
		GROUP BY m.id ORDER BY m.id`
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("state history: %w", err)
	}
	defer rows.Close()
	// Fill blocks, then copy once: no regrowing a slice of a million
	// records.
	var blocks [][]stack.StateRecord
	block := make([]stack.StateRecord, 0, 1024)
	var id string
	var packed sql.RawBytes
	var recs []packedRecord
	for rows.Next() {
		if err := rows.Scan(&id, &packed); err != nil {
			return nil, fmt.Errorf("state history: %w", err)
		}
		if recs, err = decodeHistory(recs[:0], packed); err != nil {
			return nil, fmt.Errorf("state history of %s: %w", id, err)
		}
		for k, r := range recs {
			// The window opens with the last record at or before From;
			// others may share its time.
			if r.at <= from && k+1 < len(recs) && recs[k+1].at <= from {
				continue
			}
			if len(block) == cap(block) {
				blocks = append(blocks, block)
				block = make([]stack.StateRecord, 0, min(2*cap(block), 1<<16))
			}
			block = append(block, stack.StateRecord{MachineID: id, State: r.state, Reason: r.reason, At: store.FromNanos(r.at)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state history: %w", err)
	}
	n := len(block)
	for _, b := range blocks {
		n += len(b)
	}
	out := make([]stack.StateRecord, 0, n)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return append(out, block...), nil
}

// packedRecord is one record of a machine's packed history.
type packedRecord struct {
	state  machinestate.State
	at, id int64
	reason string
}

// decodeHistory appends the records of one machine's packed history to
// recs, in (at, id) order.
func decodeHistory(recs []packedRecord, b []byte) ([]packedRecord, error) {
	sorted := true
	for len(b) > 0 {
		var r packedRecord
		var st, n int64
		var err error
		if st, b, err = nextInt(b); err != nil {
			return nil, err
		}
		if r.at, b, err = nextInt(b); err != nil {
			return nil, err
		}
		if r.id, b, err = nextInt(b); err != nil {
			return nil, err
		}
		if n, b, err = nextInt(b); err != nil {
			return nil, err
		}
		if n < 0 || n > int64(len(b)) {
			return nil, fmt.Errorf("packed history: reason of %d bytes overruns the record", n)
		}
		r.state = machinestate.State(st)
		if n > 0 {
			r.reason = string(b[:n])
		}
		b = b[n:]
		if len(b) > 0 {
			if b[0] != ' ' {
				return nil, fmt.Errorf("packed history: no separator after a record")
			}
			b = b[1:]
		}
		if k := len(recs); k > 0 && (recs[k-1].at > r.at || recs[k-1].at == r.at && recs[k-1].id > r.id) {
			sorted = false
		}
		recs = append(recs, r)
	}
	if !sorted {
		slices.SortFunc(recs, func(x, y packedRecord) int {
			if c := cmp.Compare(x.at, y.at); c != 0 {
				return c
			}
			return cmp.Compare(x.id, y.id)
		})
	}
	return recs, nil
}

// nextInt decodes a decimal integer ended by a space.
func nextInt(b []byte) (int64, []byte, error) {
	i, neg := 0, false
	if i < len(b) && b[i] == '-' {
		neg, i = true, 1
	}
	var v int64
	start := i
	for ; i < len(b) && b[i] != ' '; i++ {
		c := b[i]
		if c < '0' || c > '9' || i-start >= 19 {
			return 0, nil, fmt.Errorf("packed history: bad number %q", b[:min(len(b), i+1)])
		}
		v = v*10 + int64(c-'0')
	}
	if i == start || i == len(b) {
		return 0, nil, fmt.Errorf("packed history: truncated record")
	}
	if neg {
		v = -v
	}
	return v, b[i+1:], nil
}

// DeleteMachine removes a machine; its history stays.
func (s *Store) DeleteMachine(ctx context.Context, id string) error {
	if err := store.CheckKey("delete machine", "id", id); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM machines WHERE id = ?`, id)
		if err != nil {
			return mapErr(err)
		}
		if err := mustAffect(res, "machine "+id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM machine_agents WHERE machine_id = ?`, id)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("delete machine %s: %w", id, err)
	}
	return nil
}
