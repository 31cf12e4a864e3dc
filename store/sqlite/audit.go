package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/store"
)

// AppendAudit records an audit entry.
func (s *Store) AppendAudit(ctx context.Context, e *audit.Entry) error {
	w, err := store.CheckAuditEntry(e, s.now())
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (id, at, actor, action, target, owner_id, outcome, request_id, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.Created, e.Actor, e.Action, e.Target, e.OwnerID, e.Outcome, e.RequestID, e.Detail)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	e.ID, e.At = w.ID, w.CreatedAt
	return nil
}

// ListAudit returns the entries q selects, newest first.
func (s *Store) ListAudit(ctx context.Context, q audit.Query) ([]*audit.Entry, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if q.Actor != "" {
		add("actor = ?", q.Actor)
	}
	if q.Target != "" {
		add("target = ?", q.Target)
	}
	if !q.Since.IsZero() {
		since, err := store.UnixNanos("since", q.Since)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		add("at >= ?", since)
	}
	if q.VisibleTo != "" {
		add("(actor = ? OR owner_id = ?)", q.VisibleTo, q.VisibleTo)
	}
	if q.Before != "" {
		var at int64
		err := s.r.QueryRowContext(ctx, `SELECT at FROM audit WHERE id = ?`, q.Before).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.Invalidf("list audit: the cursor names no entry")
		}
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", mapErr(err))
		}
		add("(at < ? OR (at = ? AND id < ?))", at, at, q.Before)
	}
	query := `SELECT id, at, actor, action, target, owner_id, outcome, request_id, detail FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at DESC, id DESC LIMIT ?"
	args = append(args, store.AuditLimit(q))
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", mapErr(err))
	}
	defer rows.Close()
	var out []*audit.Entry
	for rows.Next() {
		var e audit.Entry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.OwnerID, &e.Outcome, &e.RequestID, &e.Detail); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		e.At = store.FromNanos(at)
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", mapErr(err))
	}
	return out, nil
}

// PruneAudit deletes the entries older than before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	b, err := store.UnixNanos("before", before)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	var n int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, b)
		if err != nil {
			return mapErr(err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return n, nil
}
