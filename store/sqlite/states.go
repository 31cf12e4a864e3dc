package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// ---- Terraform state versions ---------------------------------------------

// PutStateVersion stores a state version, State sealed; a serial not greater
// than the stack's latest is ErrStaleSerial.
func (s *Store) PutStateVersion(ctx context.Context, v *store.StateVersion) error {
	w, err := store.CheckStateVersion(v, s.now())
	if err != nil {
		return err
	}
	created, cn := w.CreatedAt, w.Created
	state, err := s.seal("terraform state", v.State)
	if err != nil {
		return fmt.Errorf("put state version of %s: %w", v.StackID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var latest sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(serial) FROM state_versions WHERE stack_id = ?`, v.StackID).Scan(&latest); err != nil {
			return err
		}
		if latest.Valid && v.Serial <= latest.Int64 {
			return fmt.Errorf("serial %d, latest is %d: %w", v.Serial, latest.Int64, store.ErrStaleSerial)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO state_versions (stack_id, serial, lineage, job_id, state, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.StackID, v.Serial, v.Lineage, v.JobID, state, cn)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put state version of %s: %w", v.StackID, err)
	}
	v.CreatedAt = created
	return nil
}

// LatestStateVersion returns the stack's version with the highest serial,
// State opened.
func (s *Store) LatestStateVersion(ctx context.Context, stackID string) (*store.StateVersion, error) {
	if err := store.CheckKey("latest state version", "stack id", stackID); err != nil {
		return nil, err
	}
	var v store.StateVersion
	var state []byte
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT stack_id, serial, lineage, job_id, state, created_at FROM state_versions
		WHERE stack_id = ? ORDER BY serial DESC LIMIT 1`, stackID).Scan(&v.StackID, &v.Serial, &v.Lineage, &v.JobID, &state, &created)
	if err != nil {
		return nil, fmt.Errorf("latest state version: %w", noRows(err, "state of "+stackID))
	}
	if v.State, err = s.open("terraform state of "+stackID, state); err != nil {
		return nil, fmt.Errorf("latest state version: %w", err)
	}
	v.CreatedAt = store.FromNanos(created)
	return &v, nil
}

// ListStateVersions returns a stack's versions oldest first, without State.
func (s *Store) ListStateVersions(ctx context.Context, stackID string) ([]*store.StateVersion, error) {
	if err := store.CheckKey("list state versions", "stack id", stackID); err != nil {
		return nil, err
	}
	out, err := list(ctx, s.r, func(sc scanner) (*store.StateVersion, error) {
		var v store.StateVersion
		var created int64
		if err := sc.Scan(&v.StackID, &v.Serial, &v.Lineage, &v.JobID, &created); err != nil {
			return nil, err
		}
		v.CreatedAt = store.FromNanos(created)
		return &v, nil
	}, `SELECT stack_id, serial, lineage, job_id, created_at FROM state_versions WHERE stack_id = ? ORDER BY serial`, stackID)
	if err != nil {
		return nil, fmt.Errorf("list state versions of %s: %w", stackID, err)
	}
	return out, nil
}

// ---- rating modules -------------------------------------------------------------

func scanModule(sc scanner) (*store.RatingModule, error) {
	var m store.RatingModule
	if err := sc.Scan(&m.Name, &m.Enabled, &m.Priority); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListRatingModules returns every stored module setting, highest priority
// first (then by name).
func (s *Store) ListRatingModules(ctx context.Context) ([]*store.RatingModule, error) {
	out, err := list(ctx, s.r, scanModule, `SELECT name, enabled, priority FROM rating_modules ORDER BY priority DESC, name`)
	if err != nil {
		return nil, fmt.Errorf("list rating modules: %w", err)
	}
	return out, nil
}

// GetRatingModule returns one module's setting.
func (s *Store) GetRatingModule(ctx context.Context, name string) (*store.RatingModule, error) {
	if err := store.CheckKey("get rating module", "name", name); err != nil {
		return nil, err
	}
	m, err := scanModule(s.r.QueryRowContext(ctx, `SELECT name, enabled, priority FROM rating_modules WHERE name = ?`, name))
	if err != nil {
		return nil, fmt.Errorf("get rating module: %w", noRows(err, "rating module "+name))
	}
	return m, nil
}

// PutRatingModule creates or replaces a module's setting.
func (s *Store) PutRatingModule(ctx context.Context, m *store.RatingModule) error {
	if err := store.CheckRatingModule(m); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rating_modules (name, enabled, priority) VALUES (?1, ?2, ?3)
			ON CONFLICT (name) DO UPDATE SET enabled = ?2, priority = ?3`, m.Name, m.Enabled, m.Priority)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put rating module %s: %w", m.Name, err)
	}
	return nil
}

// ---- writer states --------------------------------------------------------------

// GetWriterState returns a writer's progress for a scope.
func (s *Store) GetWriterState(ctx context.Context, scope, writer string) (*store.WriterState, error) {
	if err := store.CheckWriterKey("get writer state", scope, writer); err != nil {
		return nil, err
	}
	var w store.WriterState
	var last sql.NullInt64
	var total string
	err := s.r.QueryRowContext(ctx, `SELECT scope, writer, last_written, total FROM writer_states WHERE scope = ? AND writer = ?`, scope, writer).
		Scan(&w.Scope, &w.Writer, &last, &total)
	if err != nil {
		return nil, fmt.Errorf("get writer state: %w", noRows(err, "writer "+writer+" state of scope "+scope))
	}
	if w.Total, err = decimal.NewFromString(total); err != nil {
		return nil, fmt.Errorf("get writer state: decode total %q: %w", total, err)
	}
	w.LastWritten = fromNull(last)
	return &w, nil
}

// PutWriterState creates or replaces a writer's progress for a scope.
func (s *Store) PutWriterState(ctx context.Context, w *store.WriterState) error {
	ln, err := store.CheckWriterState(w)
	if err != nil {
		return err
	}
	var last any // NULL until a period is written
	if !w.LastWritten.IsZero() {
		last = ln
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO writer_states (scope, writer, last_written, total) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (scope, writer) DO UPDATE SET last_written = ?3, total = ?4`, w.Scope, w.Writer, last, w.Total.String())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put writer %s state of %s: %w", w.Writer, w.Scope, err)
	}
	return nil
}
