package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	bn, en := w.Begin, w.End
	rows, attrs, err := pointRows(p, w)
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
		case last != bn:
			return fmt.Errorf("period begins %s but the scope was rated up to %s: %w",
				p.Begin.UTC().Format(time.RFC3339Nano), store.FromNanos(last).Format(time.RFC3339Nano), store.ErrConflict)
		}
		if err := insertPoints(ctx, tx, p, rows, attrs); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO scope_states (scope, last_processed) VALUES (?1, ?2)
			ON CONFLICT (scope) DO UPDATE SET last_processed = ?2`, p.Scope, en)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	}
	return nil
}

// pointRows checks p's points, whose window is w, and returns them in the
// form rated_points stores, with each one's attrs JSON.
func pointRows(p *store.RatedPeriod, w store.PeriodWrite) ([]store.PointRecord, []string, error) {
	rows := make([]store.PointRecord, len(p.Points))
	attrs := make([]string, len(p.Points))
	var err error
	for i := range p.Points {
		if rows[i], err = store.RatedPointRecord(p, w, i); err != nil {
			return nil, nil, err
		}
		if attrs[i], err = store.JSONObject(rows[i].Attrs); err != nil {
			return nil, nil, fmt.Errorf("write rated period of %s: point %d: %w", p.Scope, i, err)
		}
	}
	return rows, attrs, nil
}

// insertPoints inserts p's points, checked as rows and attrs, in tx.
func insertPoints(ctx context.Context, tx *sql.Tx, p *store.RatedPeriod, rows []store.PointRecord, attrs []string) error {
	if len(rows) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO rated_points
		(scope, begin_at, end_at, service, unit, qty, price, groupby, metadata, attrs, day_at, week_at, month_at, year_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, jsonb(?), ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, r := range rows {
		pt := &p.Points[i]
		if _, err := stmt.ExecContext(ctx, p.Scope, r.Begin, r.End, pt.Service, pt.Unit, pt.Qty.String(), pt.Price.String(), r.Groupby, r.Metadata,
			attrs[i], r.Buckets[0], r.Buckets[1], r.Buckets[2], r.Buckets[3]); err != nil {
			return mapErr(err)
		}
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

// ---- queries ------------------------------------------------------------------

// bucketColumn is the rated_points column holding a time bucket key's
// value: the Unix nanoseconds of the start of the UTC day, ISO week
// (Monday), month or year the point's Begin falls in; "" for other keys.
func bucketColumn(key string) string {
	if i := store.BucketIndex(key); i >= 0 {
		return bucketColumns[i]
	}
	return ""
}

// bucketColumns hold the values of store.BucketKeys, in their order.
var bucketColumns = [len(store.BucketKeys)]string{"day_at", "week_at", "month_at", "year_at"}

// attrExpr is the SQL reading key from a point's groupby, else its metadata
// (attrs holds both, groupby winning).
func attrExpr(key string) (string, error) {
	if err := store.CheckAttrKey(key); err != nil {
		return "", err
	}
	path := "'" + strings.ReplaceAll(`$."`+key+`"`, "'", "''") + "'"
	return `json_extract(attrs, ` + path + `)`, nil
}

// whereClause builds the WHERE of a points query from the scope, window and
// filters.
func whereClause(q store.SummaryQuery) (string, []any, error) {
	pq, err := store.CheckPointsQuery(q)
	if err != nil {
		return "", nil, err
	}
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds, args = append(conds, cond), append(args, arg) }
	if q.Scope != "" {
		add("scope = ?", q.Scope)
	}
	if pq.BeginSet {
		add("begin_at >= ?", pq.Begin)
	}
	if pq.EndSet {
		add("end_at <= ?", pq.End)
	}
	for _, f := range pq.Filters {
		switch f.Key {
		case store.KeyType:
			add("service = ?", f.Value)
		case store.KeyTime:
			add("begin_at = ?", f.Nanos)
		case store.KeyDay, store.KeyWeek, store.KeyMonth, store.KeyYear:
			add(bucketColumn(f.Key)+" = ?", f.Nanos)
		default:
			e, err := attrExpr(f.Key)
			if err != nil {
				return "", nil, fmt.Errorf("filter: %w", err)
			}
			add(e+" = ?", f.Value)
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

func formatTime(n int64) string { return store.FromNanos(n).Format(time.RFC3339Nano) }

// RatedPoints returns the points of the query's scope and window matching
// its filters, ordered by begin then service, from Offset, at most Limit
// (all when Limit <= 0). GroupBy is ignored.
func (s *Store) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	if err := store.CheckPage("rated points", q.Offset); err != nil {
		return nil, err
	}
	where, args, err := whereClause(q)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	args = append(args, limit, q.Offset)
	out, err := list(ctx, s.r, scanPoint, `SELECT scope, begin_at, end_at, service, unit, qty, price, groupby, metadata FROM rated_points`+
		where+` ORDER BY begin_at, service, id LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	return out, nil
}

func scanPoint(sc scanner) (store.RatedPoint, error) {
	var p store.RatedPoint
	var begin, end int64
	var qty, price, groupby, meta string
	if err := sc.Scan(&p.Scope, &begin, &end, &p.Service, &p.Unit, &qty, &price, &groupby, &meta); err != nil {
		return p, err
	}
	p.Begin, p.End = store.FromNanos(begin), store.FromNanos(end)
	var err error
	if p.Qty, err = decimal.NewFromString(qty); err != nil {
		return p, fmt.Errorf("decode qty %q: %w", qty, err)
	}
	if p.Price, err = decimal.NewFromString(price); err != nil {
		return p, fmt.Errorf("decode price %q: %w", price, err)
	}
	if err := json.Unmarshal([]byte(groupby), &p.Groupby); err != nil {
		return p, fmt.Errorf("decode groupby: %w", err)
	}
	if err := json.Unmarshal([]byte(meta), &p.Metadata); err != nil {
		return p, fmt.Errorf("decode metadata: %w", err)
	}
	return p, nil
}

// Summarize groups the matching points by q.GroupBy and pages the groups
// inside SQLite (GROUP BY, LIMIT, OFFSET); quantities and prices are summed
// exactly as decimals. Group keys: "type" (the service), "time" (the
// period), "time-d", "time-w", "time-m", "time-y" (the RFC 3339 start of
// the UTC day, ISO week, month or year of Begin), any other key the point's
// groupby value, else its metadata value (null when it has neither). Rows are
// ordered by begin, then the key values.
func (s *Store) Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error) {
	if err := store.CheckSummaryQuery(q); err != nil {
		return nil, err
	}
	where, args, err := whereClause(q)
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	sum := &store.Summary{Columns: append([]string{"begin", "end", "qty", "rate"}, q.GroupBy...), Results: [][]any{}}
	var (
		selects []string
		groups  []string
		orders  = []string{"1"}
		isTime  = make([]bool, len(q.GroupBy))
	)
	for i, k := range q.GroupBy {
		alias := fmt.Sprintf("k%d", i)
		var expr string
		switch k {
		case store.KeyType:
			expr = "service"
		case store.KeyTime:
			expr, isTime[i] = "begin_at", true
			groups = append(groups, "end_at")
		case store.KeyDay, store.KeyWeek, store.KeyMonth, store.KeyYear:
			expr, isTime[i] = bucketColumn(k), true
		default:
			if expr, err = attrExpr(k); err != nil {
				return nil, fmt.Errorf("summarize: group by: %w", err)
			}
		}
		selects = append(selects, expr+" AS "+alias)
		groups = append(groups, alias)
		orders = append(orders, alias)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	grouped := len(groups) > 0
	// The fifth column counts: the points of the one ungrouped row, or,
	// as a window over the groups, every group before LIMIT and OFFSET.
	head := `SELECT min(begin_at), max(end_at), kloud_decimal_sum(qty), kloud_decimal_sum(price), count(*)`
	if grouped {
		head += ` OVER ()`
	}
	for _, sel := range selects {
		head += ", " + sel
	}
	query := head + ` FROM rated_points` + where
	qargs := args
	if grouped {
		query += ` GROUP BY ` + strings.Join(groups, ", ")
		query += ` ORDER BY ` + strings.Join(orders, ", ") + ` LIMIT ? OFFSET ?`
		qargs = append(slices.Clip(args), limit, q.Offset)
	}
	err = s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, qargs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var begin, end sql.NullInt64
			var qty, rate sql.NullString
			var n int64
			keys := make([]any, len(q.GroupBy))
			dest := []any{&begin, &end, &qty, &rate, &n}
			for i := range keys {
				dest = append(dest, &keys[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if grouped {
				sum.Total = int(n)
			} else if n == 0 {
				continue // the ungrouped row over nothing
			}
			row := []any{formatTime(begin.Int64), formatTime(end.Int64), qty.String, rate.String}
			for i, v := range keys {
				switch x := v.(type) {
				case nil:
					row = append(row, nil)
				case int64:
					if isTime[i] {
						row = append(row, formatTime(x))
					} else {
						row = append(row, fmt.Sprint(x))
					}
				case []byte:
					row = append(row, string(x))
				default:
					row = append(row, fmt.Sprint(x))
				}
			}
			sum.Results = append(sum.Results, row)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if grouped && len(sum.Results) == 0 && q.Offset > 0 {
			// The page is past the last group: count them.
			return tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM rated_points`+where+
				` GROUP BY `+strings.Join(groupExprs(groups, selects), ", ")+`)`, args...).Scan(&sum.Total)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	if !grouped {
		// One row over everything matched, paged here.
		sum.Total = len(sum.Results)
		if q.Offset > 0 {
			sum.Results = sum.Results[:0]
		}
	}
	return sum, nil
}

// groupExprs resolves the aliases of a GROUP BY list to their expressions,
// for the count query that selects none of them.
func groupExprs(groups, selects []string) []string {
	expr := map[string]string{}
	for _, sel := range selects {
		i := strings.LastIndex(sel, " AS ")
		expr[sel[i+4:]] = sel[:i]
	}
	out := make([]string, len(groups))
	for i, g := range groups {
		if e, ok := expr[g]; ok {
			out[i] = e
		} else {
			out[i] = g
		}
	}
	return out
}
