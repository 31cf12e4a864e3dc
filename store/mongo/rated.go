package mongo

import (
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
// A period is one document <scope>/<begin> holding all its points, so its
// insert stores the points and advances the scope's state together (the
// state is the end of the scope's newest period), and the unique _id on
// (scope, begin) lets exactly one of two concurrent commits of a period
// win; a commit whose Begin is not the newest period's End is refused
// first. Nothing is written before that one insert, so a crash leaves
// either the whole period or nothing, and a re-run rates nothing twice
// (SQLite inserts the points and moves the state in one transaction). A
// period document must stay under MongoDB's 16 MiB: some 40,000 points.
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
	// MaxB and MinE bound the points' begins and ends, so a window query
	// skips periods that cannot hold a matching point.
	MaxB int64      `bson:"max_b"`
	MinE int64      `bson:"min_e"`
	Pts  []pointDoc `bson:"pts,omitempty"`
}

type pointDoc struct {
	Scope string `bson:"s"` // repeated: FerretDB's $unwind keeps only _id and the array
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
			return out, store.Invalidf("%s %s has more than %d decimal places", field, d, limbScale)
		}
		d = d.Truncate(limbScale)
	}
	v := new(big.Int).Set(d.Coefficient())
	exp := int64(d.Exponent()) + limbScale
	v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(exp), nil))
	neg := v.Sign() < 0
	v.Abs(v)
	if v.Cmp(limbMax) >= 0 {
		return out, store.Invalidf("%s %s has more than %d integer digits", field, d, 9*(limbs-limbFrac))
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

// bucketField is the point field holding a time bucket key's value (the
// Unix nanoseconds of the start of the UTC day, ISO week, month or year
// Begin falls in); "" for other keys.
func bucketField(key string) string {
	if i := store.BucketIndex(key); i >= 0 {
		return bucketFields[i]
	}
	return ""
}

// bucketFields hold the values of store.BucketKeys, in their order.
var bucketFields = [len(store.BucketKeys)]string{"d", "w", "mo", "y"}

// attrField is the field path of a groupby or metadata key: "a." and the
// key with '%', '.', '$' and NUL percent-encoded (field names may not hold
// dots or start with '$'). Keys with quotes, backslashes or control
// characters are refused, as the SQLite backend refuses them.
func attrField(key string) (string, error) {
	if err := store.CheckAttrKey(key); err != nil {
		return "", err
	}
	return "a." + attrName(key), nil
}

func attrName(key string) string {
	return strings.NewReplacer("%", "%25", ".", "%2E", "$", "%24").Replace(key)
}

type scopeHeadDoc struct {
	ID    string `bson:"_id"` // the scope
	Begin int64  `bson:"begin"`
}

// headPeriod returns the scope's newest period, without its points. The
// periods of a scope form a chain (each begins where the one before ends),
// so it follows the chain by _id from a hint (scope_heads: the newest
// period as last recorded, possibly behind); without a hint it queries.
func (s *Store) headPeriod(ctx context.Context, scope string) (*periodDoc, error) {
	noPoints := options.FindOne().SetProjection(bson.D{{Key: "pts", Value: 0}})
	var d periodDoc
	var hint scopeHeadDoc
	err := one(ctx, s.scopeHeads, byID(scope), &hint, "scope head")
	switch {
	case err == nil:
		err = one(ctx, s.periods, byID(periodID(scope, hint.Begin)), &d, "period", noPoints)
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, err
	}
	if errors.Is(err, store.ErrNotFound) {
		err = one(ctx, s.periods, bson.D{{Key: "scope", Value: scope}}, &d, "state of scope "+scope,
			options.FindOne().SetSort(sortBy("-begin")).SetProjection(bson.D{{Key: "pts", Value: 0}}))
	}
	if err != nil {
		return nil, err
	}
	for {
		var next periodDoc
		switch err := one(ctx, s.periods, byID(periodID(scope, d.End)), &next, "period", noPoints); {
		case errors.Is(err, store.ErrNotFound):
			return &d, nil
		case err != nil:
			return nil, err
		}
		d = next
	}
}

// CommitRatedPeriod stores a period's points and advances the scope's state
// to p.End, both or neither: one insert. A period whose Begin is not the
// scope's LastProcessed is ErrConflict. Points with an empty scope, begin
// or end take the period's.
func (s *Store) CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	w, err := store.CheckRatedPeriod(p)
	if err != nil {
		return err
	}
	bn, en := w.Begin, w.End
	pts, maxB, minE, err := encodePoints(p, w)
	if err != nil {
		return err
	}
	switch head, err := s.headPeriod(ctx, p.Scope); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, err)
	case head.End != bn:
		return fmt.Errorf("commit rated period of %s: period begins %s but the scope was rated up to %s: %w", p.Scope,
			p.Begin.UTC().Format(time.RFC3339Nano), store.FromNanos(head.End).Format(time.RFC3339Nano), store.ErrConflict)
	}
	// The scope is listed (ListScopeStates) before its first period can
	// exist; a head hint naming a period that was never stored is
	// harmless.
	if _, err := s.scopeHeads.InsertOne(ctx, scopeHeadDoc{ID: p.Scope, Begin: bn}); err != nil && !mgo.IsDuplicateKeyError(err) {
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, mapErr(err))
	}
	doc := bson.D{{Key: "_id", Value: periodID(p.Scope, bn)}, {Key: "scope", Value: p.Scope}, {Key: "begin", Value: bn}, {Key: "end", Value: en},
		{Key: "max_b", Value: maxB}, {Key: "min_e", Value: minE}, {Key: "pts", Value: pts}}
	if _, err := s.periods.InsertOne(ctx, doc); err != nil {
		if mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("commit rated period of %s: period beginning %s was committed meanwhile: %w", p.Scope,
				p.Begin.UTC().Format(time.RFC3339Nano), store.ErrConflict)
		}
		return fmt.Errorf("commit rated period of %s: %w", p.Scope, mapErr(err))
	}
	// Only a hint: a stale one costs the next reader a lookup.
	if _, err := s.scopeHeads.ReplaceOne(ctx, byID(p.Scope), scopeHeadDoc{ID: p.Scope, Begin: bn}, options.Replace().SetUpsert(true)); err != nil && !mgo.IsDuplicateKeyError(err) {
		s.log.Warn("record scope head", "scope", p.Scope, "error", err)
	}
	return nil
}

// encodePoints encodes p's points, whose window is w, as its document's
// pts, and returns the bounds of their begins and ends.
func encodePoints(p *store.RatedPeriod, w store.PeriodWrite) (pts bson.A, maxB, minE int64, err error) {
	commitOrd := ord()
	pts = make(bson.A, len(p.Points))
	maxB, minE = w.Begin, w.End
	for i := range p.Points {
		r, err := store.RatedPointRecord(p, w, i)
		if err != nil {
			return nil, 0, 0, err
		}
		if pts[i], err = encodePoint(p, i, r, commitOrd); err != nil {
			return nil, 0, 0, fmt.Errorf("write rated period of %s: point %d: %w", p.Scope, i, err)
		}
		maxB, minE = max(maxB, r.Begin), min(minE, r.End)
	}
	return pts, maxB, minE, nil
}

// encodePoint encodes point i of p, checked as r, as an element of its
// period's pts.
func encodePoint(p *store.RatedPeriod, i int, r store.PointRecord, commitOrd primitive.ObjectID) (bson.D, error) {
	pt := &p.Points[i]
	a := make(bson.D, 0, len(r.Attrs))
	for _, k := range slices.Sorted(maps.Keys(r.Attrs)) {
		if k == "" {
			continue // no query can name it
		}
		a = append(a, bson.E{Key: attrName(k), Value: r.Attrs[k]})
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
		{Key: "o", Value: commitOrd}, {Key: "i", Value: int64(i)}, {Key: "s", Value: p.Scope},
		{Key: "b", Value: r.Begin}, {Key: "e", Value: r.End}, {Key: "svc", Value: pt.Service}, {Key: "unit", Value: pt.Unit},
		{Key: "qty", Value: pt.Qty.String()}, {Key: "price", Value: pt.Price.String()}, {Key: "gb", Value: r.Groupby}, {Key: "md", Value: r.Metadata},
		{Key: "a", Value: a},
	}
	for k, key := range store.BucketKeys {
		d = append(d, bson.E{Key: bucketField(key), Value: r.Buckets[k]})
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
	if err := store.CheckKey("get scope state", "scope", scope); err != nil {
		return nil, err
	}
	head, err := s.headPeriod(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("get scope state: %w", err)
	}
	return &store.ScopeState{Scope: scope, LastProcessed: store.FromNanos(head.End)}, nil
}

// ListScopeStates returns every scope's state, ordered by scope: the
// scopes scope_heads names, each with its newest period.
func (s *Store) ListScopeStates(ctx context.Context) ([]*store.ScopeState, error) {
	scopes, err := allOf[scopeHeadDoc](ctx, s.scopeHeads, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list scope states: %w", err)
	}
	names := make([]string, 0, len(scopes))
	for _, v := range scopes {
		names = append(names, v.ID)
	}
	sort.Strings(names)
	out := make([]*store.ScopeState, 0, len(names))
	for _, n := range names {
		st, err := s.GetScopeState(ctx, n)
		if errors.Is(err, store.ErrNotFound) {
			continue // its first commit did not happen
		}
		if err != nil {
			return nil, fmt.Errorf("list scope states: %w", err)
		}
		out = append(out, st)
	}
	return out, nil
}

// ---- queries ------------------------------------------------------------------

// pointsPipeline is the start of every points query: the periods that can
// hold a matching point, unwound to one document per point ("pts"), and
// the points matching the scope, window and filters.
func pointsPipeline(q store.SummaryQuery) (mgo.Pipeline, error) {
	pq, err := store.CheckPointsQuery(q)
	if err != nil {
		return nil, err
	}
	top := bson.D{}
	if q.Scope != "" {
		top = append(top, bson.E{Key: "scope", Value: q.Scope})
	}
	m := bson.D{}
	var b, e bson.D
	if pq.BeginSet {
		b = bson.D{{Key: "$gte", Value: pq.Begin}}
		top = append(top, bson.E{Key: "max_b", Value: bson.D{{Key: "$gte", Value: pq.Begin}}})
	}
	if pq.EndSet {
		e = bson.D{{Key: "$lte", Value: pq.End}}
		top = append(top, bson.E{Key: "min_e", Value: bson.D{{Key: "$lte", Value: pq.End}}})
	}
	for _, f := range pq.Filters {
		switch f.Key {
		case store.KeyType:
			m = append(m, bson.E{Key: "pts.svc", Value: f.Value})
		case store.KeyTime:
			b = append(b, bson.E{Key: "$eq", Value: f.Nanos})
		case store.KeyDay, store.KeyWeek, store.KeyMonth, store.KeyYear:
			m = append(m, bson.E{Key: "pts." + bucketField(f.Key), Value: f.Nanos})
		default:
			a, err := attrField(f.Key)
			if err != nil {
				return nil, fmt.Errorf("filter: %w", err)
			}
			m = append(m, bson.E{Key: "pts." + a, Value: f.Value})
		}
	}
	if len(b) > 0 {
		m = append(m, bson.E{Key: "pts.b", Value: b})
	}
	if len(e) > 0 {
		m = append(m, bson.E{Key: "pts.e", Value: e})
	}
	p := mgo.Pipeline{{{Key: "$match", Value: top}}, {{Key: "$unwind", Value: "$pts"}}}
	if len(m) > 0 {
		p = append(p, bson.D{{Key: "$match", Value: m}})
	}
	return p, nil
}

// RatedPoints returns the points of the query's scope and window matching
// its filters, ordered by begin then service (then the order they were
// committed in), from Offset, at most Limit (all when Limit <= 0). GroupBy
// is ignored.
func (s *Store) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	if err := store.CheckPage("rated points", q.Offset); err != nil {
		return nil, err
	}
	pipe, err := pointsPipeline(q)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", err)
	}
	pipe = append(pipe, bson.D{{Key: "$sort", Value: sortBy("pts.b", "pts.svc", "pts.o", "pts.i")}})
	if q.Offset > 0 {
		pipe = append(pipe, bson.D{{Key: "$skip", Value: int64(q.Offset)}})
	}
	if q.Limit > 0 {
		pipe = append(pipe, bson.D{{Key: "$limit", Value: int64(q.Limit)}})
	}
	cur, err := s.periods.Aggregate(ctx, pipe)
	if err != nil {
		return nil, fmt.Errorf("rated points: %w", mapErr(err))
	}
	var rows []struct {
		Pts pointDoc `bson:"pts"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("rated points: %w", mapErr(err))
	}
	docs := make([]pointDoc, len(rows))
	scopes := make([]string, len(rows))
	for i := range rows {
		docs[i] = rows[i].Pts
		scopes[i] = rows[i].Pts.Scope
	}
	out := make([]store.RatedPoint, len(docs))
	for i, d := range docs {
		p := store.RatedPoint{Scope: scopes[i], Begin: store.FromNanos(d.B), End: store.FromNanos(d.E), Service: d.Svc, Unit: d.Unit}
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
	if err := store.CheckSummaryQuery(q); err != nil {
		return nil, err
	}
	pipe, err := pointsPipeline(q)
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	id := bson.D{}
	isTime := make([]bool, len(q.GroupBy))
	for i, k := range q.GroupBy {
		var expr string
		switch k {
		case store.KeyType:
			expr = "$pts.svc"
		case store.KeyTime:
			expr, isTime[i] = "$pts.b", true
		case store.KeyDay, store.KeyWeek, store.KeyMonth, store.KeyYear:
			expr, isTime[i] = "$pts."+bucketField(k), true
		default:
			f, err := attrField(k)
			if err != nil {
				return nil, fmt.Errorf("summarize: group by: %w", err)
			}
			expr = "$pts." + f
		}
		id = append(id, bson.E{Key: fmt.Sprintf("k%d", i), Value: expr})
	}
	id = append(id, bson.E{Key: "b", Value: "$pts.b"}, bson.E{Key: "e", Value: "$pts.e"})
	rows := map[string]*summaryRow{}
	timeKey := slices.Contains(q.GroupBy, store.KeyTime)
	// add runs one pipeline: $match, then $group on the keys and period
	// with one $sum, and adds each output to its row.
	add := func(pipe mgo.Pipeline, groupID bson.D, field string, apply func(r *summaryRow, g *groupOut) error) error {
		pipe = append(slices.Clip(pipe), bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: groupID},
			{Key: "v", Value: bson.D{{Key: "$sum", Value: "$pts." + field}}}}}})
		cur, err := s.periods.Aggregate(ctx, pipe)
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
	countID := append(slices.Clone(id), bson.E{Key: "lk", Value: "$pts.lk"})
	if err := add(pipe, countID, "one", func(r *summaryRow, g *groupOut) error {
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
		lp := append(slices.Clip(pipe), bson.D{{Key: "$match", Value: bson.D{{Key: "pts." + field, Value: bson.D{{Key: "$exists", Value: true}}}}}})
		if err := add(lp, id, field, func(r *summaryRow, g *groupOut) error {
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
		return store.CompareSummaryRows(a.begin, a.end, a.keys, b.begin, b.end, b.keys)
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

func formatTime(n int64) string { return store.FromNanos(n).Format(time.RFC3339Nano) }

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
