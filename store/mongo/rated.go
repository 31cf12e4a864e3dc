package mongo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/store"
)

// Rated periods.
//
// A commit is one insert: the period record <scope>/<begin> (unique), made
// after the period's points were written invisible (c: false) under the
// commit's token. Its insert advances the scope's state (the newest
// record's end) and decides between concurrent commits of the same period;
// the points are then made visible and the record marked done. A reader
// first finishes any record not yet done (a committer that died between
// the two steps), so points and state appear together; points of a commit
// that lost, or died before its record, stay invisible and are deleted by
// the period's next winner. A re-run after a crash therefore rates nothing
// twice (SQLite inserts the points and moves the state in one
// transaction).
//
// Money and quantities are stored as exact decimal strings for reading
// back, and as base-10^9 integer limbs (q0…q7, p0…p7: 45 decimal places, 27
// integer digits) that an aggregation sums exactly with $sum: MongoDB and
// FerretDB both add int64s exactly, while FerretDB 1.x has no Decimal128.

type periodDoc struct {
	ID    string `bson:"_id"`
	Scope string `bson:"scope"`
	Begin int64  `bson:"begin"`
	End   int64  `bson:"end"`
	Tok   string `bson:"tok"`
	Done  bool   `bson:"done"`
}

type pointDoc struct {
	Scope string `bson:"scope"`
	B     int64  `bson:"b"`
	E     int64  `bson:"e"`
	Svc   string `bson:"svc"`
	Unit  string `bson:"unit"`
	Qty   string `bson:"qty"`
	Price string `bson:"price"`
	GB    string `bson:"gb"`
	MD    string `bson:"md"`
}

func periodID(scope string, begin int64) string { return fmt.Sprintf("%s/%020d", scope, begin) }

// Limbs: a value is Σ limb[i]·10^(9·(i-limbFrac)), every limb in
// (-10^9, 10^9) with the value's sign.
const (
	limbs     = 8
	limbFrac  = 5 // limbs below the decimal point: 45 places
	limbScale = 9 * limbFrac
)

var (
	limbBase = big.NewInt(1_000_000_000)
	limbMax  = new(big.Int).Exp(big.NewInt(10), big.NewInt(9*limbs), nil)
)

// toLimbs splits d into limbs; a value with more than 45 decimal places or
// 27 integer digits is ErrInvalid.
func toLimbs(field string, d decimal.Decimal) ([limbs]int64, error) {
	var out [limbs]int64
	if d.Exponent() < -limbScale {
		if t := d.Truncate(limbScale); !t.Equal(d) {
			return out, invalid("%s %s has more than %d decimal places", field, d, limbScale)
		}
		d = d.Truncate(limbScale)
	}
	v := new(big.Int).Set(d.Coefficient())
	exp := int64(d.Exponent()) + limbScale
	v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(exp), nil))
	neg := v.Sign() < 0
	v.Abs(v)
	if v.Cmp(limbMax) >= 0 {
		return out, invalid("%s %s has more than %d integer digits", field, d, 9*(limbs-limbFrac))
	}
	r := new(big.Int)
	for i := range limbs {
		v.QuoRem(v, limbBase, r)
		out[i] = r.Int64()
		if neg {
			out[i] = -out[i]
		}
	}
	return out, nil
}

// fromLimbs adds limb sums back into one exact decimal.
func fromLimbs(sums [limbs]int64) decimal.Decimal {
	total := new(big.Int)
	for i := limbs - 1; i >= 0; i-- {
		total.Mul(total, limbBase)
		total.Add(total, big.NewInt(sums[i]))
	}
	return decimal.NewFromBigInt(total, -limbScale)
}

func limbName(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// Group and filter keys that are not groupby or metadata keys.
const (
	keyType  = "type"
	keyTime  = "time"
	keyDay   = "time-d"
	keyWeek  = "time-w"
	keyMonth = "time-m"
	keyYear  = "time-y"
)

// bucketField is the point field holding a time bucket key's value (the
// Unix nanoseconds of the start of the UTC day, ISO week, month or year
// Begin falls in); "" for other keys.
func bucketField(key string) string {
	switch key {
	case keyDay:
		return "d"
	case keyWeek:
		return "w"
	case keyMonth:
		return "mo"
	case keyYear:
		return "y"
	}
	return ""
}

var bucketKeys = [4]string{keyDay, keyWeek, keyMonth, keyYear}

// bucketOf returns the start of the time bucket key that t falls in.
func bucketOf(key string, t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch key {
	case keyDay:
	case keyWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		y, m, d = t.AddDate(0, 0, -back).Date()
	case keyMonth:
		d = 1
	case keyYear:
		m, d = time.January, 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// attrField is the field path of a groupby or metadata key: "a." and the
// key with '%', '.', '$' and NUL percent-encoded (field names may not hold
// dots or start with '$'). Keys with quotes, backslashes or control
// characters are refused, as the SQLite backend refuses them.
func attrField(key string) (string, error) {
	if key == "" {
		return "", invalid("empty key")
	}
	if strings.ContainsAny(key, "\"\\") || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 }) {
		return "", invalid("key %q may not hold quotes, backslashes or control characters", key)
	}
	return "a." + attrName(key), nil
}

func attrName(key string) string {
	return strings.NewReplacer("%", "%25", ".", "%2E", "$", "%24").Replace(key)
}

func jsonMap(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// finishPeriods completes the commits whose record is stored but whose
// points are not yet visible (their committer died in between); every
// reader calls it first.
func (s *Store) finishPeriods(ctx context.Context) error {
	open, err := all[periodDoc](ctx, s.periods, bson.D{{Key: "done", Value: false}})
	if err != nil {
		return err
	}
	for _, p := range open {
		if err := s.finishPeriod(ctx, &p); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) finishPeriod(ctx context.Context, p *periodDoc) error {
	if _, err := s.points.UpdateMany(ctx, bson.D{{Key: "tok", Value: p.Tok}, {Key: "c", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "c", Value: true}}}}); err != nil {
		return fmt.Errorf("publish points of period %s: %w", p.ID, mapErr(err))
	}
	if _, err := s.periods.UpdateOne(ctx, byID(p.ID), bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: true}}}}); err != nil {
		return fmt.Errorf("finish period %s: %w", p.ID, mapErr(err))
	}
	// Points of commits of this period that lost, or died before their
	// record, are garbage.
	if _, err := s.points.DeleteMany(ctx, bson.D{{Key: "period", Value: p.ID}, {Key: "tok", Value: bson.D{{Key: "$ne", Value: p.Tok}}}}); err != nil {
		s.log.Warn("delete points of failed commits", "period", p.ID, "error", err)
	}
	return nil
}

func (s *Store) headPeriod(ctx context.Context, scope string) (*periodDoc, error) {
	var d periodDoc
	err := one(ctx, s.periods, bson.D{{Key: "scope", Value: scope}}, &d, "state of scope "+scope, options.FindOne().SetSort(sortBy("-begin")))
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// CommitRatedPeriod stores a period's points and advances the scope's state
// to p.End, both or neither to every reader. A period whose Begin is not
// the scope's LastProcessed is ErrConflict. Points with an empty scope,
// begin or end take the period's.
func (s *Store) CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	if p == nil {
		return invalid("commit rated period: nil period")
	}
	if p.Scope == "" {
		return invalid("commit rated period: empty scope")
	}
	if !p.End.After(p.Begin) {
		return invalid("commit rated period of %s: end %s is not after begin %s", p.Scope, p.End.Format(time.RFC3339Nano), p.Begin.Format(time.RFC3339Nano))
	}
	bn, err := nanos("begin", p.Begin)
	if err != nil {
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	}
	en, err := nanos("end", p.End)
	if err != nil {
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	}
	pid := periodID(p.Scope, bn)
	tok := newID("rp-")
	commitOrd := ord()
	docs := make([]any, len(p.Points))
	for i := range p.Points {
		d, err := s.pointDoc(p, i, bn, en, pid, tok, commitOrd)
		if err != nil {
			return fmt.Errorf("commit rated period of %s: point %d: %w", p.Scope, i, err)
		}
		docs[i] = d
	}
	head, err := s.headPeriod(ctx, p.Scope)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	case head.End != bn:
		return fmt.Errorf("commit rated period of %s: period begins %s but the scope was rated up to %s: %w", p.Scope,
			p.Begin.UTC().Format(time.RFC3339Nano), fromNanos(head.End).Format(time.RFC3339Nano), store.ErrConflict)
	case !head.Done:
		if err := s.finishPeriod(ctx, head); err != nil {
			return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
		}
	}
	if len(docs) > 0 {
		if _, err := s.points.InsertMany(ctx, docs); err != nil {
			_, _ = s.points.DeleteMany(context.WithoutCancel(ctx), bson.D{{Key: "tok", Value: tok}})
			return fmt.Errorf("commit rated period of %s: write points: %w", p.Scope, mapErr(err))
		}
	}
	rec := periodDoc{ID: pid, Scope: p.Scope, Begin: bn, End: en, Tok: tok}
	if _, err := s.periods.InsertOne(ctx, rec); err != nil {
		_, _ = s.points.DeleteMany(context.WithoutCancel(ctx), bson.D{{Key: "tok", Value: tok}})
		if mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("commit rated period of %s: period beginning %s was committed meanwhile: %w", p.Scope,
				p.Begin.UTC().Format(time.RFC3339Nano), store.ErrConflict)
		}
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, mapErr(err))
	}
	if err := s.finishPeriod(ctx, &rec); err != nil {
		// Committed: the next reader finishes it.
		s.log.Warn("finish committed period", "period", pid, "error", err)
	}
	return nil
}

func (s *Store) pointDoc(p *store.RatedPeriod, i int, bn, en int64, pid, tok string, commitOrd primitive.ObjectID) (bson.D, error) {
	pt := &p.Points[i]
	if pt.Scope != "" && pt.Scope != p.Scope {
		return nil, invalid("point has scope %q", pt.Scope)
	}
	if pt.Service == "" {
		return nil, invalid("point has no service")
	}
	b, e := bn, en
	var err error
	if !pt.Begin.IsZero() {
		if b, err = nanos("point begin", pt.Begin); err != nil {
			return nil, err
		}
	}
	if !pt.End.IsZero() {
		if e, err = nanos("point end", pt.End); err != nil {
			return nil, err
		}
	}
	gb, err := jsonMap(pt.Groupby)
	if err != nil {
		return nil, fmt.Errorf("groupby: %w", err)
	}
	md, err := jsonMap(pt.Metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	attrs := make(map[string]string, len(pt.Groupby)+len(pt.Metadata))
	maps.Copy(attrs, pt.Metadata)
	maps.Copy(attrs, pt.Groupby)
	a := make(bson.D, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if k == "" {
			continue // no query can name it
		}
		a = append(a, bson.E{Key: attrName(k), Value: attrs[k]})
	}
	ql, err := toLimbs("qty", pt.Qty)
	if err != nil {
		return nil, err
	}
	pl, err := toLimbs("price", pt.Price)
	if err != nil {
		return nil, err
	}
	d := bson.D{
		{Key: "_id", Value: fmt.Sprintf("%s/%08d", tok, i)}, {Key: "period", Value: pid}, {Key: "tok", Value: tok}, {Key: "c", Value: false},
		{Key: "ord", Value: commitOrd}, {Key: "i", Value: int64(i)},
		{Key: "scope", Value: p.Scope}, {Key: "b", Value: b}, {Key: "e", Value: e}, {Key: "svc", Value: pt.Service}, {Key: "unit", Value: pt.Unit},
		{Key: "qty", Value: pt.Qty.String()}, {Key: "price", Value: pt.Price.String()}, {Key: "gb", Value: gb}, {Key: "md", Value: md},
		{Key: "a", Value: a},
	}
	for _, k := range bucketKeys {
		bt, err := nanos("bucket", bucketOf(k, fromNanos(b)))
		if err != nil {
			return nil, err
		}
		d = append(d, bson.E{Key: bucketField(k), Value: bt})
	}
	// Only nonzero limbs are stored; lk says which (bit j: qj, bit 8+j:
	// pj), so a summary sums only the limbs its points have.
	var mask int64
	for j := range limbs {
		if ql[j] != 0 {
			d = append(d, bson.E{Key: limbName("q", j), Value: ql[j]})
			mask |= 1 << j
		}
		if pl[j] != 0 {
			d = append(d, bson.E{Key: limbName("p", j), Value: pl[j]})
			mask |= 1 << (limbs + j)
		}
	}
	d = append(d, bson.E{Key: "lk", Value: mask}, bson.E{Key: "one", Value: int64(1)})
	return d, nil
}

// GetScopeState returns how far a scope has been rated: the end of its
// newest period record.
func (s *Store) GetScopeState(ctx context.Context, scope string) (*store.ScopeState, error) {
	if scope == "" {
		return nil, invalid("get scope state: empty scope")
	}
	head, err := s.headPeriod(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("get scope state: %w", err)
	}
	return &store.ScopeState{Scope: scope, LastProcessed: fromNanos(head.End)}, nil
}

// ListScopeStates returns every scope's state, ordered by scope.
func (s *Store) ListScopeStates(ctx context.Context) ([]*store.ScopeState, error) {
	// An aggregation rather than distinct: FerretDB 1.x refuses the
	// maxTimeMS the driver adds to distinct under a client timeout.
	cur, err := s.periods.Aggregate(ctx, mgo.Pipeline{{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$scope"}}}}})
	if err != nil {
		return nil, fmt.Errorf("list scope states: %w", mapErr(err))
	}
	var scopes []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &scopes); err != nil {
		return nil, fmt.Errorf("list scope states: %w", mapErr(err))
	}
	names := make([]string, 0, len(scopes))
	for _, v := range scopes {
		names = append(names, v.ID)
	}
	sort.Strings(names)
	out := make([]*store.ScopeState, 0, len(names))
	for _, n := range names {
		st, err := s.GetScopeState(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("list scope states: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}

// ---- queries ------------------------------------------------------------------

func parseTimeValue(key, v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, invalid("filter %s: %q is not an RFC 3339 time or a date", key, v)
}

// matchOf builds the $match of a points query from the scope, window and
// filters; only committed points match.
func matchOf(q store.SummaryQuery) (bson.D, error) {
	m := bson.D{{Key: "c", Value: true}}
	if q.Scope != "" {
		m = append(m, bson.E{Key: "scope", Value: q.Scope})
	}
	var b bson.D
	if !q.Begin.IsZero() {
		n, err := nanos("begin", q.Begin)
		if err != nil {
			return nil, err
		}
		b = bson.D{{Key: "$gte", Value: n}}
	}
	var e bson.D
	if !q.End.IsZero() {
		n, err := nanos("end", q.End)
		if err != nil {
			return nil, err
		}
		e = bson.D{{Key: "$lte", Value: n}}
	}
	for _, k := range slices.Sorted(maps.Keys(q.Filters)) {
		v := q.Filters[k]
		switch k {
		case keyType:
			m = append(m, bson.E{Key: "svc", Value: v})
		case keyTime:
			t, err := parseTimeValue(k, v)
			if err != nil {
				return nil, err
			}
			n, err := nanos("filter time", t)
			if err != nil {
				return nil, err
			}
			b = append(b, bson.E{Key: "$eq", Value: n})
		case keyDay, keyWeek, keyMonth, keyYear:
			t, err := parseTimeValue(k, v)
			if err != nil {
				return nil, err
			}
			n, err := nanos("filter "+k, bucketOf(k, t))
			if err != nil {
				return nil, err
			}
			m = append(m, bson.E{Key: bucketField(k), Value: n})
		default:
			f, err := attrField(k)
			if err != nil {
				return nil, fmt.Errorf("filter: %w", err)
			}
			m = append(m, bson.E{Key: f, Value: v})
		}
	}
	if len(b) > 0 {
		m = append(m, bson.E{Key: "b", Value: b})
	}
	if len(e) > 0 {
		m = append(m, bson.E{Key: "e", Value: e})
	}
	return m, nil
}

// RatedPoints returns the points of the query's scope and window matching
// its filters, ordered by begin then service (then the order they were
// committed in), from Offset, at most Limit (all when Limit <= 0). GroupBy
// is ignored.
func (s *Store) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	if q.Offset < 0 {
		return nil, invalid("rated points: negative offset %d", q.Offset)
	}
	match, err := matchOf(q)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	if err := s.finishPeriods(ctx); err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	opts := options.Find().SetSort(sortBy("b", "svc", "ord", "i")).SetSkip(int64(q.Offset))
	if q.Limit > 0 {
		opts.SetLimit(int64(q.Limit))
	}
	docs, err := all[pointDoc](ctx, s.points, match, opts)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	out := make([]store.RatedPoint, len(docs))
	for i, d := range docs {
		p := store.RatedPoint{Scope: d.Scope, Begin: fromNanos(d.B), End: fromNanos(d.E), Service: d.Svc, Unit: d.Unit}
		if p.Qty, err = decimal.NewFromString(d.Qty); err != nil {
			return nil, fmt.Errorf("rated points: decode qty %q: %w", d.Qty, err)
		}
		if p.Price, err = decimal.NewFromString(d.Price); err != nil {
			return nil, fmt.Errorf("rated points: decode price %q: %w", d.Price, err)
		}
		if err := json.Unmarshal([]byte(d.GB), &p.Groupby); err != nil {
			return nil, fmt.Errorf("rated points: decode groupby: %w", err)
		}
		if err := json.Unmarshal([]byte(d.MD), &p.Metadata); err != nil {
			return nil, fmt.Errorf("rated points: decode metadata: %w", err)
		}
		out[i] = p
	}
	return out, nil
}

// summaryRow is one group of a summary while it is being merged.
type summaryRow struct {
	keys       []any // string, int64 (a time) or nil
	begin, end int64
	qty, rate  [limbs]int64
	n          int64
}

// Summarize groups the matching points by q.GroupBy inside the server and
// pages the groups. Group keys: "type" (the service), "time" (the period),
// "time-d", "time-w", "time-m", "time-y" (the RFC 3339 start of the UTC
// day, ISO week, month or year of Begin), any other key the point's groupby
// value, else its metadata value (null when it has neither). Rows are
// ordered by begin, then the key values.
//
// The pipelines use only what MongoDB and FerretDB 1.24 both do right:
// $match, then $group on the keys and the point's period (begin, end) with
// a single $sum: first of a stored 1 (the count, grouped also by the set
// of limbs the points have), then of each limb some point has. FerretDB's
// $group hands every accumulator after the first an already drained
// iterator (they all sum to 0), its $unwind drops every other field, and
// it has no $min, $max, $first, $facet or $setWindowFields: so a group's
// first begin and last end cannot be computed, sorted on and paged in the
// server. The server returns exact sums per group and period; the backend
// adds a group's periods, orders the groups and pages them.
func (s *Store) Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error) {
	if q.Offset < 0 {
		return nil, invalid("summarize: negative offset %d", q.Offset)
	}
	match, err := matchOf(q)
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	id := bson.D{}
	isTime := make([]bool, len(q.GroupBy))
	for i, k := range q.GroupBy {
		if slices.Contains(q.GroupBy[:i], k) {
			return nil, invalid("summarize: group key %q given twice", k)
		}
		var expr string
		switch k {
		case keyType:
			expr = "$svc"
		case keyTime:
			expr, isTime[i] = "$b", true
		case keyDay, keyWeek, keyMonth, keyYear:
			expr, isTime[i] = "$"+bucketField(k), true
		default:
			f, err := attrField(k)
			if err != nil {
				return nil, fmt.Errorf("summarize: group by: %w", err)
			}
			expr = "$" + f
		}
		id = append(id, bson.E{Key: fmt.Sprintf("k%d", i), Value: expr})
	}
	id = append(id, bson.E{Key: "b", Value: "$b"}, bson.E{Key: "e", Value: "$e"})
	if err := s.finishPeriods(ctx); err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	rows := map[string]*summaryRow{}
	timeKey := slices.Contains(q.GroupBy, keyTime)
	// add runs one pipeline: $match, then $group on the keys and period
	// with one $sum, and adds each output to its row.
	add := func(match bson.D, groupID bson.D, field string, apply func(r *summaryRow, g *groupOut) error) error {
		cur, err := s.points.Aggregate(ctx, mgo.Pipeline{
			{{Key: "$match", Value: match}},
			{{Key: "$group", Value: bson.D{{Key: "_id", Value: groupID}, {Key: "v", Value: bson.D{{Key: "$sum", Value: "$" + field}}}}}},
		})
		if err != nil {
			return mapErr(err)
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			var doc bson.M
			if err := cur.Decode(&doc); err != nil {
				return err
			}
			g, err := decodeGroup(doc, len(q.GroupBy))
			if err != nil {
				return err
			}
			key := fmt.Sprintf("%#v", g.keys)
			if timeKey {
				key += fmt.Sprintf("|%d", g.end) // SQLite groups a period by begin and end
			}
			r, ok := rows[key]
			if !ok {
				r = &summaryRow{keys: g.keys, begin: g.begin, end: g.end}
				rows[key] = r
			}
			r.begin, r.end = min(r.begin, g.begin), max(r.end, g.end)
			if err := apply(r, g); err != nil {
				return err
			}
		}
		return mapErr(cur.Err())
	}
	// First the counts, per group, period and set of limbs present.
	var present int64
	countID := append(slices.Clone(id), bson.E{Key: "lk", Value: "$lk"})
	if err := add(match, countID, "one", func(r *summaryRow, g *groupOut) error {
		r.n += g.sum
		present |= g.mask
		return nil
	}); err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	// Then each limb some point has, summed over the points that have it.
	for bit := range 2 * limbs {
		if present&(1<<bit) == 0 {
			continue
		}
		j, field := bit%limbs, limbName("q", bit%limbs)
		if bit >= limbs {
			field = limbName("p", j)
		}
		lm := append(slices.Clone(match), bson.E{Key: field, Value: bson.D{{Key: "$exists", Value: true}}})
		if err := add(lm, id, field, func(r *summaryRow, g *groupOut) error {
			if bit < limbs {
				r.qty[j] += g.sum
			} else {
				r.rate[j] += g.sum
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("summarize: %s: %w", field, err)
		}
	}
	sorted := slices.Collect(maps.Values(rows))
	slices.SortFunc(sorted, func(a, b *summaryRow) int {
		if c := cmp.Compare(a.begin, b.begin); c != 0 {
			return c
		}
		for i := range a.keys {
			if c := compareKey(a.keys[i], b.keys[i]); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.end, b.end)
	})
	sum := &store.Summary{Total: len(sorted), Columns: append([]string{"begin", "end", "qty", "rate"}, q.GroupBy...), Results: [][]any{}}
	page := sorted[min(q.Offset, len(sorted)):]
	if q.Limit > 0 && len(page) > q.Limit {
		page = page[:q.Limit]
	}
	for _, r := range page {
		if r.n == 0 {
			continue
		}
		row := []any{formatTime(r.begin), formatTime(r.end), fromLimbs(r.qty).String(), fromLimbs(r.rate).String()}
		for i, v := range r.keys {
			if t, ok := v.(int64); ok && isTime[i] {
				row = append(row, formatTime(t))
			} else {
				row = append(row, v)
			}
		}
		sum.Results = append(sum.Results, row)
	}
	return sum, nil
}

func formatTime(n int64) string { return fromNanos(n).Format(time.RFC3339Nano) }

// compareKey orders group key values: null first, then numbers, then
// strings (bytewise), as MongoDB and SQLite sort them.
func compareKey(a, b any) int {
	rank := func(v any) int {
		switch v.(type) {
		case nil:
			return 0
		case int64:
			return 1
		}
		return 2
	}
	if c := cmp.Compare(rank(a), rank(b)); c != 0 {
		return c
	}
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case string:
		return strings.Compare(x, b.(string))
	}
	return 0
}

// groupOut is one $group output document: one sum of one group and
// period (and, for the counts, one set of limbs present).
type groupOut struct {
	keys       []any
	begin, end int64
	mask       int64
	sum        int64
}

// decodeGroup reads one $group output document.
func decodeGroup(doc bson.M, nkeys int) (*groupOut, error) {
	g := &groupOut{keys: make([]any, nkeys)}
	id, _ := doc["_id"].(bson.M)
	for i := range nkeys {
		switch v := id[fmt.Sprintf("k%d", i)].(type) {
		case nil:
		case string:
			g.keys[i] = v
		case int64:
			g.keys[i] = v
		case int32:
			g.keys[i] = int64(v)
		default:
			g.keys[i] = fmt.Sprint(v)
		}
	}
	var err error
	if g.begin, err = asInt(id["b"]); err != nil {
		return nil, fmt.Errorf("group begin: %w", err)
	}
	if g.end, err = asInt(id["e"]); err != nil {
		return nil, fmt.Errorf("group end: %w", err)
	}
	if g.mask, err = asInt(id["lk"]); err != nil {
		return nil, fmt.Errorf("group limbs: %w", err)
	}
	if g.sum, err = asInt(doc["v"]); err != nil {
		return nil, fmt.Errorf("group sum: %w", err)
	}
	return g, nil
}

// asInt reads an integer the server summed; a double means it overflowed
// int64, which would lose exactness.
func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		return 0, fmt.Errorf("the server returned %v as a double (an int64 sum overflowed)", x)
	}
	return 0, fmt.Errorf("unexpected %T %v", v, v)
}
