package mongo

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Cost control: budgets, schedules, webhooks and deliveries, rule
// validity, one document each, keyed by _id; and the rewrite of a rated
// period, one replace of its document.

func (s *Store) budgets() *mgo.Collection    { return s.db.Collection("budgets") }
func (s *Store) schedules() *mgo.Collection  { return s.db.Collection("schedules") }
func (s *Store) webhooks() *mgo.Collection   { return s.db.Collection("webhooks") }
func (s *Store) deliveries() *mgo.Collection { return s.db.Collection("webhook_deliveries") }
func (s *Store) validity() *mgo.Collection   { return s.db.Collection("hashmap_validity") }

// costIndexes are the indexes of the cost collections.
func (s *Store) costIndexes() []index {
	return []index{
		{s.budgets(), "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.webhooks(), "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.deliveries(), "webhook", bson.D{{Key: "webhook_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.deliveries(), "due", bson.D{{Key: "status", Value: 1}, {Key: "next_at", Value: 1}}, false},
	}
}

// ---- budgets -------------------------------------------------------------------

type budgetDoc struct {
	Scope       string   `bson:"_id"`
	OwnerID     string   `bson:"owner_id"`
	Amount      string   `bson:"amount"`
	Period      string   `bson:"period"`
	WarnAt      []string `bson:"warn_at"`
	Action      string   `bson:"action"`
	PeriodStart int64    `bson:"period_start"`
	Notified    []string `bson:"notified"`
	Created     int64    `bson:"created_at"`
	Updated     int64    `bson:"updated_at"`
}

func (d *budgetDoc) budget() (*store.Budget, error) {
	b := &store.Budget{Scope: d.Scope, OwnerID: d.OwnerID, Period: d.Period, Action: d.Action, Notified: d.Notified,
		PeriodStart: fromOpt(d.PeriodStart), CreatedAt: store.FromNanos(d.Created), UpdatedAt: store.FromNanos(d.Updated)}
	var err error
	if b.Amount, err = decimal.NewFromString(d.Amount); err != nil {
		return nil, fmt.Errorf("decode budget %s amount: %w", d.Scope, err)
	}
	b.WarnAt = make([]decimal.Decimal, 0, len(d.WarnAt))
	for _, w := range d.WarnAt {
		f, err := decimal.NewFromString(w)
		if err != nil {
			return nil, fmt.Errorf("decode budget %s warn_at: %w", d.Scope, err)
		}
		b.WarnAt = append(b.WarnAt, f)
	}
	return b, nil
}

// PutBudget creates or replaces a scope's budget; the checker's progress
// stays.
func (s *Store) PutBudget(ctx context.Context, b *store.Budget) error {
	if err := store.CheckBudget(b); err != nil {
		return err
	}
	warn := make([]string, len(b.WarnAt))
	for i, w := range b.WarnAt {
		warn[i] = w.String()
	}
	now := s.now().UTC().UnixNano()
	_, err := s.budgets().UpdateOne(ctx, byID(b.Scope), bson.D{
		{Key: "$set", Value: bson.D{{Key: "owner_id", Value: b.OwnerID}, {Key: "amount", Value: b.Amount.String()}, {Key: "period", Value: b.Period},
			{Key: "warn_at", Value: warn}, {Key: "action", Value: b.Action}, {Key: "updated_at", Value: now}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "period_start", Value: int64(0)}, {Key: "notified", Value: []string{}}, {Key: "created_at", Value: now}}},
	}, options.Update().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put budget %s: %w", b.Scope, mapErr(err))
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
	var d budgetDoc
	if err := one(ctx, s.budgets(), byID(scope), &d, "budget "+scope); err != nil {
		return nil, fmt.Errorf("get budget: %w", err)
	}
	return d.budget()
}

// ListBudgets lists budgets by scope.
func (s *Store) ListBudgets(ctx context.Context, ownerID string) ([]*store.Budget, error) {
	filter := bson.D{}
	if ownerID != "" {
		filter = bson.D{{Key: "owner_id", Value: ownerID}}
	}
	docs, err := allOf[budgetDoc](ctx, s.budgets(), filter, options.Find().SetSort(sortBy("_id")))
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	out := make([]*store.Budget, 0, len(docs))
	for i := range docs {
		b, err := docs[i].budget()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// DeleteBudget deletes a scope's budget.
func (s *Store) DeleteBudget(ctx context.Context, scope string) error {
	return deleteOne(ctx, s.budgets(), "budget", scope)
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
	if notified == nil {
		notified = []string{}
	}
	res, err := s.budgets().UpdateOne(ctx, byID(scope), bson.D{{Key: "$set", Value: bson.D{{Key: "period_start", Value: ps}, {Key: "notified", Value: notified}}}})
	if err != nil {
		return fmt.Errorf("set budget progress of %s: %w", scope, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set budget progress: %w", store.NotFoundf("budget %s", scope))
	}
	return nil
}

// ---- schedules -------------------------------------------------------------------

type scheduleDoc struct {
	Target    string `bson:"_id"`
	OwnerID   string `bson:"owner_id"`
	Autostart string `bson:"autostart"`
	Autostop  string `bson:"autostop"`
	Timezone  string `bson:"timezone"`
	Checked   int64  `bson:"checked_at"`
	Updated   int64  `bson:"updated_at"`
}

func (d *scheduleDoc) schedule() *store.Schedule {
	return &store.Schedule{Target: d.Target, OwnerID: d.OwnerID, Autostart: d.Autostart, Autostop: d.Autostop, Timezone: d.Timezone,
		Checked: store.FromNanos(d.Checked), UpdatedAt: store.FromNanos(d.Updated)}
}

// PutSchedule creates or replaces a target's schedule.
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
	d := scheduleDoc{Target: v.Target, OwnerID: v.OwnerID, Autostart: v.Autostart, Autostop: v.Autostop, Timezone: v.Timezone, Checked: checked, Updated: now.UnixNano()}
	if _, err := s.schedules().ReplaceOne(ctx, byID(v.Target), d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put schedule %s: %w", v.Target, mapErr(err))
	}
	return nil
}

// GetSchedule returns a target's schedule.
func (s *Store) GetSchedule(ctx context.Context, target string) (*store.Schedule, error) {
	if err := store.CheckKey("get schedule", "target", target); err != nil {
		return nil, err
	}
	var d scheduleDoc
	if err := one(ctx, s.schedules(), byID(target), &d, "schedule of "+target); err != nil {
		return nil, fmt.Errorf("get schedule: %w", err)
	}
	return d.schedule(), nil
}

// ListSchedules lists every schedule by target.
func (s *Store) ListSchedules(ctx context.Context) ([]*store.Schedule, error) {
	docs, err := allOf[scheduleDoc](ctx, s.schedules(), bson.D{}, options.Find().SetSort(sortBy("_id")))
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out := make([]*store.Schedule, len(docs))
	for i := range docs {
		out[i] = docs[i].schedule()
	}
	return out, nil
}

// DeleteSchedule deletes a target's schedule.
func (s *Store) DeleteSchedule(ctx context.Context, target string) error {
	return deleteOne(ctx, s.schedules(), "schedule of", target)
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
	if _, err := s.schedules().UpdateOne(ctx, bson.D{{Key: "_id", Value: target}, {Key: "checked_at", Value: bson.D{{Key: "$lt", Value: n}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "checked_at", Value: n}}}}); err != nil {
		return fmt.Errorf("set schedule checked of %s: %w", target, mapErr(err))
	}
	if err := s.exists(ctx, s.schedules(), "schedule of", target); err != nil {
		return fmt.Errorf("set schedule checked: %w", err)
	}
	return nil
}

// ---- webhooks ----------------------------------------------------------------------

type webhookDoc struct {
	ID      string   `bson:"_id"`
	OwnerID string   `bson:"owner_id"`
	URL     string   `bson:"url"`
	Events  []string `bson:"events"`
	Secret  []byte   `bson:"secret"`
	Created int64    `bson:"created_at"`
}

func (s *Store) webhook(d *webhookDoc) (*store.Webhook, error) {
	secret, err := s.open("webhook secret", d.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", d.ID, err)
	}
	return &store.Webhook{ID: d.ID, OwnerID: d.OwnerID, URL: d.URL, Events: d.Events, Secret: stack.Secret(secret), CreatedAt: store.FromNanos(d.Created)}, nil
}

// CreateWebhook stores a webhook, its secret sealed.
func (s *Store) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	id, err := store.CheckWebhook(w)
	if err != nil {
		return err
	}
	sealed, err := s.seal("webhook secret", []byte(w.Secret.Reveal()))
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	created := s.nowOr(w.CreatedAt)
	d := webhookDoc{ID: id, OwnerID: w.OwnerID, URL: w.URL, Events: w.Events, Secret: sealed, Created: created.UnixNano()}
	if _, err := s.webhooks().InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create webhook: %w", mapErr(err))
	}
	w.ID, w.CreatedAt = id, created
	return nil
}

// GetWebhook returns a webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	if err := store.CheckKey("get webhook", "id", id); err != nil {
		return nil, err
	}
	var d webhookDoc
	if err := one(ctx, s.webhooks(), byID(id), &d, "webhook "+id); err != nil {
		return nil, fmt.Errorf("get webhook: %w", err)
	}
	return s.webhook(&d)
}

// ListWebhooks lists webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, ownerID string) ([]*store.Webhook, error) {
	filter := bson.D{}
	if ownerID != "" {
		filter = bson.D{{Key: "owner_id", Value: ownerID}}
	}
	docs, err := allOf[webhookDoc](ctx, s.webhooks(), filter, options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	out := make([]*store.Webhook, 0, len(docs))
	for i := range docs {
		w, err := s.webhook(&docs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// DeleteWebhook deletes a webhook, then its deliveries.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	if err := deleteOne(ctx, s.webhooks(), "webhook", id); err != nil {
		return err
	}
	if _, err := s.deliveries().DeleteMany(ctx, bson.D{{Key: "webhook_id", Value: id}}); err != nil {
		return fmt.Errorf("delete deliveries of webhook %s: %w", id, mapErr(err))
	}
	return nil
}

type attemptDoc struct {
	At     int64  `bson:"at"`
	Status int    `bson:"status_code"`
	Error  string `bson:"error"`
}

type deliveryDoc struct {
	ID        string       `bson:"_id"`
	WebhookID string       `bson:"webhook_id"`
	Event     string       `bson:"event"`
	Body      []byte       `bson:"body"`
	Status    string       `bson:"status"`
	Attempts  []attemptDoc `bson:"attempts"`
	N         int          `bson:"n"`
	Created   int64        `bson:"created_at"`
	NextAt    int64        `bson:"next_at"`
}

func (d *deliveryDoc) delivery() *store.Delivery {
	out := &store.Delivery{ID: d.ID, WebhookID: d.WebhookID, Event: d.Event, Body: d.Body, Status: d.Status,
		Attempts: make([]store.Attempt, len(d.Attempts)), CreatedAt: store.FromNanos(d.Created), NextAt: fromOpt(d.NextAt)}
	for i, a := range d.Attempts {
		out.Attempts[i] = store.Attempt{At: store.FromNanos(a.At), StatusCode: a.Status, Error: a.Error}
	}
	return out
}

func attemptDocs(as []store.Attempt) ([]attemptDoc, error) {
	out := make([]attemptDoc, len(as))
	for i, a := range as {
		at, err := store.UnixNanos("attempt at", a.At)
		if err != nil {
			return nil, err
		}
		out[i] = attemptDoc{At: at, Status: a.StatusCode, Error: a.Error}
	}
	return out, nil
}

// CreateDelivery stores a new delivery of an existing webhook.
func (s *Store) CreateDelivery(ctx context.Context, d *store.Delivery) error {
	id, err := store.CheckDelivery(d)
	if err != nil {
		return err
	}
	if err := s.exists(ctx, s.webhooks(), "webhook", d.WebhookID); err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	as, err := attemptDocs(d.Attempts)
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	next, err := store.OptUnixNanos("next_attempt_at", d.NextAt)
	if err != nil {
		return fmt.Errorf("create delivery: %w", err)
	}
	created := s.nowOr(d.CreatedAt)
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	doc := deliveryDoc{ID: id, WebhookID: d.WebhookID, Event: d.Event, Body: body, Status: d.Status, Attempts: as, N: len(as), Created: created.UnixNano(), NextAt: next}
	if _, err := s.deliveries().InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("create delivery: %w", mapErr(err))
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
	as, err := attemptDocs(d.Attempts)
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	next, err := store.OptUnixNanos("next_attempt_at", d.NextAt)
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, err)
	}
	res, err := s.deliveries().UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "n", Value: prev}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "status", Value: d.Status}, {Key: "attempts", Value: as}, {Key: "n", Value: len(as)}, {Key: "next_at", Value: next}}}})
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", d.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		if err := s.exists(ctx, s.deliveries(), "delivery", d.ID); err != nil {
			return fmt.Errorf("update delivery: %w", err)
		}
		return fmt.Errorf("update delivery %s: attempted meanwhile: %w", d.ID, store.ErrConflict)
	}
	return nil
}

// ListDeliveries lists a webhook's deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, webhookID string, limit int) ([]*store.Delivery, error) {
	opts := options.Find().SetSort(sortBy("-created_at", "-_id"))
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	docs, err := allOf[deliveryDoc](ctx, s.deliveries(), bson.D{{Key: "webhook_id", Value: webhookID}}, opts)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	out := make([]*store.Delivery, len(docs))
	for i := range docs {
		out[i] = docs[i].delivery()
	}
	return out, nil
}

// DueDeliveries lists pending deliveries due at now, oldest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*store.Delivery, error) {
	n, err := store.UnixNanos("now", now)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	opts := options.Find().SetSort(sortBy("next_at", "created_at"))
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	docs, err := allOf[deliveryDoc](ctx, s.deliveries(), bson.D{{Key: "status", Value: store.DeliveryPending}, {Key: "next_at", Value: bson.D{{Key: "$lte", Value: n}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	out := make([]*store.Delivery, len(docs))
	for i := range docs {
		out[i] = docs[i].delivery()
	}
	return out, nil
}

// ---- rule validity -------------------------------------------------------------------

type validityDoc struct {
	RuleID string `bson:"_id"`
	Start  int64  `bson:"start"`
	End    int64  `bson:"end"`
}

// PutRuleValidity sets a rule's validity; both sides open deletes it.
func (s *Store) PutRuleValidity(ctx context.Context, v *store.RuleValidity) error {
	start, end, err := store.CheckRuleValidity(v)
	if err != nil {
		return err
	}
	if start == 0 && end == 0 {
		return s.DeleteRuleValidity(ctx, v.RuleID)
	}
	if _, err := s.validity().ReplaceOne(ctx, byID(v.RuleID), validityDoc{RuleID: v.RuleID, Start: start, End: end}, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put rule validity of %s: %w", v.RuleID, mapErr(err))
	}
	return nil
}

// ListRuleValidities lists every validity by rule id.
func (s *Store) ListRuleValidities(ctx context.Context) ([]*store.RuleValidity, error) {
	docs, err := allOf[validityDoc](ctx, s.validity(), bson.D{}, options.Find().SetSort(sortBy("_id")))
	if err != nil {
		return nil, fmt.Errorf("list rule validities: %w", err)
	}
	out := make([]*store.RuleValidity, len(docs))
	for i, d := range docs {
		out[i] = &store.RuleValidity{RuleID: d.RuleID, Start: fromOpt(d.Start), End: fromOpt(d.End)}
	}
	return out, nil
}

// DeleteRuleValidity removes a rule's validity.
func (s *Store) DeleteRuleValidity(ctx context.Context, ruleID string) error {
	if err := store.CheckKey("delete rule validity", "rule_id", ruleID); err != nil {
		return err
	}
	if _, err := s.validity().DeleteOne(ctx, byID(ruleID)); err != nil {
		return fmt.Errorf("delete rule validity of %s: %w", ruleID, mapErr(err))
	}
	return nil
}

// ---- re-rating ---------------------------------------------------------------------------

// ReplaceRatedPeriod replaces the points of a rated period: one replace of
// its document.
func (s *Store) ReplaceRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	w, err := store.CheckRatedPeriod(p)
	if err != nil {
		return err
	}
	bn, en := w.Begin, w.End
	pts, maxB, minE, err := encodePoints(p, w)
	if err != nil {
		return err
	}
	doc := bson.D{{Key: "_id", Value: periodID(p.Scope, bn)}, {Key: "scope", Value: p.Scope}, {Key: "begin", Value: bn}, {Key: "end", Value: en},
		{Key: "max_b", Value: maxB}, {Key: "min_e", Value: minE}, {Key: "pts", Value: pts}}
	res, err := s.periods.ReplaceOne(ctx, bson.D{{Key: "_id", Value: periodID(p.Scope, bn)}, {Key: "end", Value: en}}, doc)
	if err != nil {
		return fmt.Errorf("replace rated period of %s: %w", p.Scope, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("replace rated period of %s: %w", p.Scope,
			store.NotFoundf("period %s", p.Begin.UTC().Format(time.RFC3339Nano)))
	}
	return nil
}
