package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// CommitRatedPeriod stores a period's points and advances the scope's state
// to p.End in one transaction. A period whose Begin is not the scope's
// LastProcessed is ErrConflict. Points with an empty scope, begin or end
// take the period's.
func (s *Store) CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	w, err := store.CheckRatedPeriod(p)
	if err != nil {
		return err
	}
	row, err := s.encodePeriod(p, w)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT last_processed FROM scope_states WHERE scope = ?`, p.Scope).Scan(&last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case last != w.Begin:
			return fmt.Errorf("period begins %s but the scope was rated up to %s: %w",
				p.Begin.UTC().Format(time.RFC3339Nano), store.FromNanos(last).Format(time.RFC3339Nano), store.ErrConflict)
		}
		if err := insertPeriod(ctx, tx, p.Scope, row); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO scope_states (scope, last_processed) VALUES (?1, ?2)
			ON CONFLICT (scope) DO UPDATE SET last_processed = ?2`, p.Scope, w.End)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	}
	return nil
}

// insertPeriod stores an encoded period of scope in tx. A period without
// points is stored too (queries skip it): it can be replaced like any.
func insertPeriod(ctx context.Context, tx *sql.Tx, scope string, r *periodRow) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO rated_periods
		(scope, begin_at, end_at, min_b, max_b, min_e, max_e, points, qty, price, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		scope, r.begin, r.end, r.minB, r.maxB, r.minE, r.maxE, r.points, r.qty, r.price, r.data)
	return mapErr(err)
}

// moveRatedPoints is migration 11's Go step: the rows of rated_points,
// grouped by scope and begin, become rated periods (a period ends at its
// points' latest end); then rated_points goes. One period is held at a
// time.
func moveRatedPoints(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT scope, begin_at, end_at, service, unit, qty, price, groupby, metadata
		FROM rated_points ORDER BY scope, begin_at, id`)
	if err != nil {
		return fmt.Errorf("move rated points: %w", err)
	}
	defer rows.Close()
	var cur *store.RatedPeriod
	flush := func() error {
		if cur == nil {
			return nil
		}
		for _, pt := range cur.Points {
			if pt.End.After(cur.End) {
				cur.End = pt.End
			}
		}
		if !cur.End.After(cur.Begin) {
			cur.End = cur.Begin.Add(time.Nanosecond)
		}
		w, err := store.CheckRatedPeriod(cur)
		if err != nil {
			return err
		}
		r, err := encodePeriod(cur, w)
		if err != nil {
			return err
		}
		scope := cur.Scope
		cur = nil
		return insertPeriod(ctx, tx, scope, r)
	}
	for rows.Next() {
		var p store.RatedPoint
		var begin, end int64
		var qty, price, groupby, meta string
		if err := rows.Scan(&p.Scope, &begin, &end, &p.Service, &p.Unit, &qty, &price, &groupby, &meta); err != nil {
			return fmt.Errorf("move rated points: %w", err)
		}
		// A point must not end before it begins (CheckRatedPoint); the
		// former table did not check, and an upgrade must not fail on it.
		p.Begin, p.End = store.FromNanos(begin), store.FromNanos(max(begin, end))
		if p.Qty, err = decimal.NewFromString(qty); err == nil {
			p.Price, err = decimal.NewFromString(price)
		}
		if err == nil {
			err = json.Unmarshal([]byte(groupby), &p.Groupby)
		}
		if err == nil {
			err = json.Unmarshal([]byte(meta), &p.Metadata)
		}
		if err != nil {
			return fmt.Errorf("move rated points: point of %s at %s: %w", p.Scope, p.Begin.Format(time.RFC3339), err)
		}
		if cur != nil && (cur.Scope != p.Scope || !cur.Begin.Equal(p.Begin)) {
			if err := flush(); err != nil {
				return fmt.Errorf("move rated points: %w", err)
			}
		}
		if cur == nil {
			cur = &store.RatedPeriod{Scope: p.Scope, Begin: p.Begin, End: p.End}
		}
		cur.Points = append(cur.Points, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("move rated points: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("move rated points: %w", err)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("move rated points: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE rated_points`); err != nil {
		return fmt.Errorf("move rated points: %w", err)
	}
	return nil
}

// GetScopeState returns how far a scope has been rated.
func (s *Store) GetScopeState(ctx context.Context, scope string) (*store.ScopeState, error) {
	if err := store.CheckKey("get scope state", "scope", scope); err != nil {
		return nil, err
	}
	var st store.ScopeState
	var last int64
	err := s.r.QueryRowContext(ctx, `SELECT scope, last_processed FROM scope_states WHERE scope = ?`, scope).Scan(&st.Scope, &last)
	if err != nil {
		return nil, fmt.Errorf("get scope state: %w", noRows(err, "state of scope "+scope))
	}
	st.LastProcessed = store.FromNanos(last)
	return &st, nil
}

// ListScopeStates returns every scope's state, ordered by scope.
func (s *Store) ListScopeStates(ctx context.Context) ([]*store.ScopeState, error) {
	out, err := list(ctx, s.r, func(sc scanner) (*store.ScopeState, error) {
		var st store.ScopeState
		var last int64
		if err := sc.Scan(&st.Scope, &last); err != nil {
			return nil, err
		}
		st.LastProcessed = store.FromNanos(last)
		return &st, nil
	}, `SELECT scope, last_processed FROM scope_states ORDER BY scope`)
	if err != nil {
		return nil, fmt.Errorf("list scope states: %w", err)
	}
	return out, nil
}
