package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// ---- budgets -------------------------------------------------------------------

const budgetCols = `scope, owner_id, amount, period, warn_at, action, period_start, notified, created_at, updated_at`

func scanBudget(sc scanner) (*store.Budget, error) {
	var b store.Budget
	var amount, warn, notified string
	var ps, created, updated int64
	if err := sc.Scan(&b.Scope, &b.OwnerID, &amount, &b.Period, &warn, &b.Action, &ps, &notified, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if b.Amount, err = decimal.NewFromString(amount); err != nil {
		return nil, fmt.Errorf("decode budget %s amount: %w", b.Scope, err)
	}
	if err := json.Unmarshal([]byte(warn), &b.WarnAt); err != nil {
		return nil, fmt.Errorf("decode budget %s warn_at: %w", b.Scope, err)
	}
	if err := json.Unmarshal([]byte(notified), &b.Notified); err != nil {
		return nil, fmt.Errorf("decode budget %s notified: %w", b.Scope, err)
	}
	b.PeriodStart = fromOpt(ps)
	b.CreatedAt, b.UpdatedAt = store.FromNanos(created), store.FromNanos(updated)
	return &b, nil
}

func fromOpt(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return store.FromNanos(n)
}

// PutBudget creates or replaces a scope's budget; the checker's progress
// stays.
func (s *Store) PutBudget(ctx context.Context, b *store.Budget) error {
	if err := store.CheckBudget(b); err != nil {
		return err
	}
	warn, err := json.Marshal(orEmpty(b.WarnAt))
	if err != nil {
		return fmt.Errorf("put budget %s: %w", b.Scope, err)
	}
	now := s.now().UTC()
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO budgets (scope, owner_id, amount, period, warn_at, action, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
			ON CONFLICT (scope) DO UPDATE SET owner_id = ?2, amount = ?3, period = ?4, warn_at = ?5, action = ?6, updated_at = ?7`,
			b.Scope, b.OwnerID, b.Amount.String(), b.Period, string(warn), b.Action, now.UnixNano())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put budget %s: %w", b.Scope, err)
	}
	got, err := s.GetBudget(ctx, b.Scope)
	if err != nil {
		return err
	}
	*b = *got
	return nil
}

// GetBudget returns a scope's budget.
func (s *Store) GetBudget(ctx context.Context, scope string) (*store.Budget, error) {
	if err := store.CheckKey("get budget", "scope", scope); err != nil {
		return nil, err
	}
	b, err := scanBudget(s.r.QueryRowContext(ctx, `SELECT `+budgetCols+` FROM budgets WHERE scope = ?`, scope))
	if err != nil {
		return nil, fmt.Errorf("get budget: %w", noRows(err, "budget "+scope))
	}
	return b, nil
}

// ListBudgets lists budgets by scope.
func (s *Store) ListBudgets(ctx context.Context, ownerID string) ([]*store.Budget, error) {
	out, err := list(ctx, s.r, scanBudget, `SELECT `+budgetCols+` FROM budgets WHERE ?1 = '' OR owner_id = ?1 ORDER BY scope`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	return out, nil
}

// DeleteBudget deletes a scope's budget.
func (s *Store) DeleteBudget(ctx context.Context, scope string) error {
	return s.deleteWhere(ctx, "budgets", "scope", "budget", scope)
}

// SetBudgetProgress records the checker's progress.
func (s *Store) SetBudgetProgress(ctx context.Context, scope string, periodStart time.Time, notified []string) error {
	if err := store.CheckKey("set budget progress", "scope", scope); err != nil {
		return err
	}
	ps, err := store.OptUnixNanos("period_start", periodStart)
	if err != nil {
		return fmt.Errorf("set budget progress of %s: %w", scope, err)
	}
	n, err := json.Marshal(orEmpty(notified))
	if err != nil {
		return fmt.Errorf("set budget progress of %s: %w", scope, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE budgets SET period_start = ?, notified = ? WHERE scope = ?`, ps, string(n), scope)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "budget "+scope)
	})
	if err != nil {
		return fmt.Errorf("set budget progress of %s: %w", scope, err)
	}
	return nil
}

func orEmpty[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// deleteWhere deletes the row of table whose key column is v.
func (s *Store) deleteWhere(ctx context.Context, table, key, what, v string) error {
	if err := store.CheckKey("delete "+what, key, v); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+key+` = ?`, v)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, what+" "+v)
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, v, err)
	}
	return nil
}

// ---- schedules -------------------------------------------------------------------

const scheduleCols = `target, owner_id, autostart, autostop, timezone, checked_at, updated_at`

func scanSchedule(sc scanner) (*store.Schedule, error) {
	var v store.Schedule
	var checked, updated int64
	if err := sc.Scan(&v.Target, &v.OwnerID, &v.Autostart, &v.Autostop, &v.Timezone, &checked, &updated); err != nil {
		return nil, err
	}
	v.Checked, v.UpdatedAt = store.FromNanos(checked), store.FromNanos(updated)
	return &v, nil
}

// PutSchedule creates or replaces a target's schedule; Checked is the
// given one, or now.
func (s *Store) PutSchedule(ctx context.Context, v *store.Schedule) error {
	if err := store.CheckSchedule(v); err != nil {
		return err
	}
	now := s.now().UTC()
	v.Checked, v.UpdatedAt = s.nowOr(v.Checked), now
	checked, err := store.UnixNanos("checked_at", v.Checked)
	if err != nil {
		return fmt.Errorf("put schedule %s: %w", v.Target, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO schedules (`+scheduleCols+`) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
			ON CONFLICT (target) DO UPDATE SET owner_id = ?2, autostart = ?3, autostop = ?4, timezone = ?5, checked_at = ?6, updated_at = ?7`,
			v.Target, v.OwnerID, v.Autostart, v.Autostop, v.Timezone, checked, now.UnixNano())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put schedule %s: %w", v.Target, err)
	}
	return nil
}

// GetSchedule returns a target's schedule.
func (s *Store) GetSchedule(ctx context.Context, target string) (*store.Schedule, error) {
	if err := store.CheckKey("get schedule", "target", target); err != nil {
		return nil, err
	}
	v, err := scanSchedule(s.r.QueryRowContext(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE target = ?`, target))
	if err != nil {
		return nil, fmt.Errorf("get schedule: %w", noRows(err, "schedule of "+target))
	}
	return v, nil
}

// ListSchedules lists every schedule by target.
func (s *Store) ListSchedules(ctx context.Context) ([]*store.Schedule, error) {
	out, err := list(ctx, s.r, scanSchedule, `SELECT `+scheduleCols+` FROM schedules ORDER BY target`)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// DeleteSchedule deletes a target's schedule.
func (s *Store) DeleteSchedule(ctx context.Context, target string) error {
	return s.deleteWhere(ctx, "schedules", "target", "schedule of", target)
}

// SetScheduleChecked moves a schedule's Checked forward.
func (s *Store) SetScheduleChecked(ctx context.Context, target string, at time.Time) error {
	if err := store.CheckKey("set schedule checked", "target", target); err != nil {
		return err
	}
	n, err := store.UnixNanos("checked_at", at)
	if err != nil {
		return fmt.Errorf("set schedule checked of %s: %w", target, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE schedules SET checked_at = max(checked_at, ?) WHERE target = ?`, n, target)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, "schedule of "+target)
	})
	if err != nil {
		return fmt.Errorf("set schedule checked of %s: %w", target, err)
	}
	return nil
}

// ---- webhooks ---------------------------------------------------------------------

const webhookCols = `id, owner_id, url, events, secret, created_at`

func (s *Store) scanWebhook(sc scanner) (*store.Webhook, error) {
	var w store.Webhook
	var events string
	var sealed []byte
	var created int64
	if err := sc.Scan(&w.ID, &w.OwnerID, &w.URL, &events, &sealed, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("decode webhook %s events: %w", w.ID, err)
	}
	secret, err := s.open("webhook secret", sealed)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", w.ID, err)
	}
	w.Secret = stack.Secret(secret)
	w.CreatedAt = store.FromNanos(created)
	return &w, nil
}

// CreateWebhook stores a webhook, its secret sealed.
func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	id, err := store.CheckWebhook(w)
	if err != nil {
		return err
	}
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	sealed, err := s.seal("webhook secret", []byte(w.Secret.Reveal()))
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	created := s.nowOr(w.CreatedAt)
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			id, w.OwnerID, w.URL, string(events), sealed, created.UnixNano())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	w.ID, w.CreatedAt = id, created
	return nil
}

// GetWebhook returns a webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if err := store.CheckKey("get webhook", "id", id); err != nil {
		return nil, err
	}
	w, err := s.scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", noRows(err, "webhook "+id))
	}
	return w, nil
}

// ListWebhooks lists webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, ownerID string) ([]*store.Webhook, error) {
	out, err := list(ctx, s.r, s.scanWebhook, `SELECT `+webhookCols+` FROM webhooks WHERE ?1 = '' OR owner_id = ?1 ORDER BY created_at, id`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook deletes a webhook and (by cascade) its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.deleteWhere(ctx, "webhooks", "id", "webhook", id)
}

const deliveryCols = `id, webhook_id, event, body, status, attempts, created_at, next_at`

func scanDelivery(sc scanner) (*store.Delivery, error) {
	var d store.Delivery
	var attempts string
	var created, next int64
	if err := sc.Scan(&d.ID, &d.WebhookID, &d.Event, &d.Body, &d.Status, &attempts, &created, &next); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(attempts), &d.Attempts); err != nil {
		return nil, fmt.Errorf("decode delivery %s attempts: %w", d.ID, err)
	}
	for i := range d.Attempts {
		d.Attempts[i].At = d.Attempts[i].At.UTC()
	}
	d.CreatedAt, d.NextAt = store.FromNanos(created), fromOpt(next)
	return &d, nil
}

// CreateDelivery stores a new delivery of an existing webhook.
func (s *Store) CreateDelivery(ctx context.Context, d *store.Delivery) error {
	id, err := store.CheckDelivery(d)
	if err != nil {
		return err
	}
	attempts, err := json.Marshal(orEmpty(d.Attempts))
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	created := s.nowOr(d.CreatedAt)
	next, err := store.OptUnixNanos("next_attempt_at", d.NextAt)
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "webhooks", "webhook", d.WebhookID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, webhook_id, event, body, status, attempts, n_attempts, created_at, next_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, d.WebhookID, d.Event, orEmpty(d.Body), d.Status, string(attempts), len(d.Attempts), created.UnixNano(), next)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	d.ID, d.CreatedAt = id, created
	return nil
}

// UpdateDelivery records a delivery's progress if its attempts are still
// prev.
func (s *Store) UpdateDelivery(ctx context.Context, d *store.Delivery, prev int) error {
	if d == nil || d.ID == "" {
		return store.Invalidf("update delivery: empty id")
	}
	attempts, err := json.Marshal(orEmpty(d.Attempts))
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	next, err := store.OptUnixNanos("next_attempt_at", d.NextAt)
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "webhook_deliveries", "delivery", d.ID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, n_attempts = ?, next_at = ? WHERE id = ? AND n_attempts = ?`,
			d.Status, string(attempts), len(d.Attempts), next, d.ID, prev)
		if err != nil {
			return mapErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delivery %s was attempted meanwhile: %w", d.ID, store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	return nil
}

// ListDeliveries lists a webhook's deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*store.Delivery, error) {
	if limit <= 0 {
		limit = -1
	}
	out, err := list(ctx, s.r, scanDelivery, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// DueDeliveries lists pending deliveries due at now, oldest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*store.Delivery, error) {
	n, err := store.UnixNanos("now", now)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	if limit <= 0 {
		limit = -1
	}
	out, err := list(ctx, s.r, scanDelivery, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, created_at, rowid LIMIT ?`, n, limit)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return out, nil
}

// ---- rule validity -------------------------------------------------------------------

// PutRuleValidity sets a rule's validity; both sides open deletes it.
func (s *Store) PutRuleValidity(ctx context.Context, v *store.RuleValidity) error {
	start, end, err := store.CheckRuleValidity(v)
	if err != nil {
		return err
	}
	if start == 0 && end == 0 {
		return s.DeleteRuleValidity(ctx, v.RuleID)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_validity (rule_id, start_at, end_at) VALUES (?1, ?2, ?3)
			ON CONFLICT (rule_id) DO UPDATE SET start_at = ?2, end_at = ?3`, v.RuleID, start, end)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("put rule validity of %s: %w", v.RuleID, err)
	}
	return nil
}

// ListRuleValidities lists every validity by rule id.
func (s *Store) ListRuleValidities(ctx context.Context) ([]*store.RuleValidity, error) {
	out, err := list(ctx, s.r, func(sc scanner) (*store.RuleValidity, error) {
		var v store.RuleValidity
		var start, end int64
		if err := sc.Scan(&v.RuleID, &start, &end); err != nil {
			return nil, err
		}
		v.Start, v.End = fromOpt(start), fromOpt(end)
		return &v, nil
	}, `SELECT rule_id, start_at, end_at FROM hashmap_validity ORDER BY rule_id`)
	if err != nil {
		return nil, fmt.Errorf("list rule validities: %w", err)
	}
	return out, nil
}

// DeleteRuleValidity removes a rule's validity.
func (s *Store) DeleteRuleValidity(ctx context.Context, ruleID string) error {
	if err := store.CheckKey("delete rule validity", "rule_id", ruleID); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM hashmap_validity WHERE rule_id = ?`, ruleID)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("delete rule validity of %s: %w", ruleID, err)
	}
	return nil
}

// ---- re-rating ---------------------------------------------------------------------------

// ReplaceRatedPeriod replaces the points of a rated period, the one that
// begins and ends where p does, in one transaction.
func (s *Store) ReplaceRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
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
		if err != nil {
			return noRows(err, "state of scope "+p.Scope)
		}
		if w.End > last {
			return store.NotFoundf("period %s of %s (rated up to %s)", p.Begin.UTC().Format(time.RFC3339Nano), p.Scope, store.FromNanos(last).Format(time.RFC3339Nano))
		}
		res, err := tx.ExecContext(ctx, `UPDATE rated_periods SET min_b = ?, max_b = ?, min_e = ?, max_e = ?, points = ?, qty = ?, price = ?, data = ?
			WHERE scope = ? AND begin_at = ? AND end_at = ?`,
			row.minB, row.maxB, row.minE, row.maxE, row.points, row.qty, row.price, row.data, p.Scope, w.Begin, w.End)
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.NotFoundf("period %s of %s (no rated period begins and ends there)", p.Begin.UTC().Format(time.RFC3339Nano), p.Scope))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace rated period of %s: %w", p.Scope, err)
	}
	return nil
}
