package sqlite

import (
	"cmp"
	"container/heap"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kloud/kloud/store"
)

// ---- reading rated periods ------------------------------------------------------

// periodMeta is a rated period's index columns.
type periodMeta struct {
	id         int64
	scope      string
	begin, end int64
	minB, maxB int64
	minE, maxE int64
	points     int
	qty, price string
	data       sql.RawBytes // nil unless the scan asked for it
}

// uniform reports whether every point of the period has the same begin
// and end.
func (m *periodMeta) uniform() bool { return m.minB == m.maxB && m.minE == m.maxE }

// inside reports whether every point of the period is in pq's window.
func (m *periodMeta) inside(pq *store.PointsQuery) bool {
	return (!pq.BeginSet || m.minB >= pq.Begin) && (!pq.EndSet || m.maxE <= pq.End)
}

// scanPeriods calls fn with every rated period of scope ("" for every
// scope) that may hold a point of pq's window, ordered by the earliest
// begin of their points. With data false, the data column is left unread
// (decode reads it when needed).
func scanPeriods(ctx context.Context, tx *sql.Tx, scope string, pq *store.PointsQuery, data bool, fn func(m *periodMeta) error) error {
	conds := []string{"points > 0"}
	var args []any
	if scope != "" {
		conds, args = append(conds, "scope = ?"), append(args, scope)
	}
	if pq.BeginSet {
		conds, args = append(conds, "max_b >= ?"), append(args, pq.Begin)
	}
	if pq.EndSet {
		// A point ends no earlier than it begins (CheckRatedPoint): a
		// period whose points all begin after End holds no match.
		conds, args = append(conds, "min_e <= ?", "min_b <= ?"), append(args, pq.End, pq.End)
	}
	cols := "id, scope, begin_at, end_at, min_b, max_b, min_e, max_e, points, qty, price"
	if data {
		cols += ", data"
	}
	query := `SELECT ` + cols + ` FROM rated_periods WHERE ` + strings.Join(conds, " AND ")
	query += " ORDER BY min_b, max_b, min_e, max_e, points, id"
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var m periodMeta
	dest := []any{&m.id, &m.scope, &m.begin, &m.end, &m.minB, &m.maxB, &m.minE, &m.maxE, &m.points, &m.qty, &m.price}
	if data {
		dest = append(dest, &m.data)
	}
	for rows.Next() {
		m.data = nil
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// decode decodes m's points, reading its data first when the scan left it
// unread.
func (m *periodMeta) decode(ctx context.Context, tx *sql.Tx) (*periodBlob, error) {
	return m.decodeInto(ctx, tx, nil)
}

// decodeInto is decode into the tables of reuse, a period no longer read,
// when not nil.
func (m *periodMeta) decodeInto(ctx context.Context, tx *sql.Tx, reuse *periodBlob) (*periodBlob, error) {
	data := []byte(m.data)
	if data == nil {
		if err := tx.QueryRowContext(ctx, `SELECT data FROM rated_periods WHERE id = ?`, m.id).Scan(&data); err != nil {
			return nil, err
		}
	}
	pb, err := decodePeriodInto(reuse, data, m.begin, m.end)
	if err != nil {
		return nil, fmt.Errorf("rated period of %s at %s: %w", m.scope, formatTime(m.begin), err)
	}
	return pb, nil
}

func formatTime(n int64) string { return store.FromNanos(n).Format(time.RFC3339Nano) }

// ---- filters ------------------------------------------------------------------------

// matcher is a points query's filters compiled for one period: strings
// become the period's dictionary indexes.
type matcher struct {
	pb     *periodBlob
	pq     *store.PointsQuery
	none   bool  // a filter's value is not in the period: nothing matches
	svc    int64 // the type filter's service, -1 when none
	attrs  [][2]int64
	times  []store.PointFilter // time and bucket filters
	bucket bucketCache
}

func newMatcher(pb *periodBlob, pq *store.PointsQuery) *matcher {
	m := &matcher{pb: pb, pq: pq, svc: -1}
	for _, f := range pq.Filters {
		switch f.Key {
		case store.KeyType:
			if m.svc = pb.index(f.Value); m.svc < 0 {
				m.none = true
			}
		case store.KeyTime, store.KeyDay, store.KeyWeek, store.KeyMonth, store.KeyYear:
			m.times = append(m.times, f)
		default:
			k, v := pb.index(f.Key), pb.index(f.Value)
			if k < 0 || v < 0 {
				m.none = true
			}
			m.attrs = append(m.attrs, [2]int64{k, v})
		}
	}
	return m
}

func (m *matcher) match(p *blobPoint) bool {
	if m.none || (m.pq.BeginSet && p.begin < m.pq.Begin) || (m.pq.EndSet && p.end > m.pq.End) {
		return false
	}
	if m.svc >= 0 && int64(p.svc) != m.svc {
		return false
	}
	for _, a := range m.attrs {
		if m.pb.attr(p, a[0]) != a[1] {
			return false
		}
	}
	for _, f := range m.times {
		if timeKey(&m.bucket, f.Key, p.begin) != f.Nanos {
			return false
		}
	}
	return true
}

// bucketCache remembers the time buckets of the last begin asked for:
// a period's points mostly share one.
type bucketCache struct {
	begin   int64
	ok      bool
	buckets [len(store.BucketKeys)]int64
}

// timeKey is the value of time key k ("time" or a bucket key) for a point
// beginning at begin: the begin itself, or its bucket's start.
func timeKey(c *bucketCache, k string, begin int64) int64 {
	i := store.BucketIndex(k)
	if i < 0 {
		return begin
	}
	if !c.ok || c.begin != begin {
		t := store.FromNanos(begin)
		for j, key := range store.BucketKeys {
			c.buckets[j] = store.BucketStart(key, t).UnixNano()
		}
		c.begin, c.ok = begin, true
	}
	return c.buckets[i]
}

// ---- RatedPoints ------------------------------------------------------------------

// errPageFull stops a scan whose page is full.
var errPageFull = errors.New("page full")

// RatedPoints returns the points of the query's scope and window matching
// its filters, ordered by begin, then service, then the order they were
// committed in, from Offset, at most Limit (all when Limit <= 0). GroupBy
// is ignored.
func (s *Store) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	out := []store.RatedPoint{}
	err := s.eachRatedPoint(ctx, q, false, func(p *store.RatedPoint) error {
		out = append(out, *p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachRatedPoint calls fn with each point RatedPoints would return, in
// its order, inside one read transaction: a reader of a whole month holds
// the periods its next point may come from, never the month. A period is
// decoded when the order reaches it. fn's point is valid for the call:
// fn copies what it keeps. An error of fn stops the walk and is returned.
//
// Each point has a DescID: the points of this store's streams with the
// same desc (groupby and metadata) share its id and its maps, which fn
// must not change.
func (s *Store) EachRatedPoint(ctx context.Context, q store.SummaryQuery, fn func(p *store.RatedPoint) error) error {
	return s.eachRatedPoint(ctx, q, true, fn)
}

// eachRatedPoint is EachRatedPoint; without intern, every point gets
// maps of its own and no DescID.
func (s *Store) eachRatedPoint(ctx context.Context, q store.SummaryQuery, intern bool, fn func(p *store.RatedPoint) error) error {
	if err := store.CheckPage("rated points", q.Offset); err != nil {
		return err
	}
	pq, err := store.CheckPointsQuery(q)
	if err != nil {
		return fmt.Errorf("rated points: %w", err)
	}
	var fnErr error
	err = s.read(ctx, func(tx *sql.Tx) error {
		var (
			open           cursorHeap
			skipped, given int
			key            []byte
			// fn's point: fn reads it, never keeps it.
			rp store.RatedPoint
			// A period all of whose points were given, whose tables
			// decode the next.
			done *periodBlob
		)
		// emit gives the open points that no unopened period can precede
		// (their points begin at or after minB), in order; false once
		// Limit points are given.
		emit := func(minB int64, last bool) (bool, error) {
			for open.Len() > 0 {
				c := open[0]
				p := &c.pb.points[c.i]
				if !last && p.begin >= minB {
					return true, nil
				}
				if skipped < q.Offset {
					skipped++
				} else {
					var desc *internedDesc
					if intern {
						key = c.pb.descKey(key[:0], p)
						desc = s.descs.intern(key, c.pb, p)
					}
					var err error
					if rp, err = c.pb.ratedPoint(c.scope, p, desc); err != nil {
						return false, err
					}
					if err := fn(&rp); err != nil {
						fnErr = err
						return false, err
					}
					if given++; q.Limit > 0 && given == q.Limit {
						return false, nil
					}
				}
				if c.next() {
					heap.Fix(&open, 0)
				} else {
					heap.Pop(&open)
					done = c.pb
				}
			}
			return true, nil
		}
		err := scanPeriods(ctx, tx, q.Scope, &pq, true, func(m *periodMeta) error {
			if more, err := emit(m.minB, false); err != nil {
				return err
			} else if !more {
				return errPageFull
			}
			pb, err := m.decodeInto(ctx, tx, done)
			done = nil
			if err != nil {
				return err
			}
			c := &pointCursor{id: m.id, scope: m.scope, pb: pb, match: newMatcher(pb, &pq), i: -1}
			if c.next() {
				heap.Push(&open, c)
			}
			return nil
		})
		if errors.Is(err, errPageFull) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = emit(0, true)
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("rated points: %w", err)
	}
	return nil
}

// pointCursor walks the matching points of one decoded period.
type pointCursor struct {
	id    int64
	scope string
	pb    *periodBlob
	match *matcher
	i     int
}

// next moves to the next matching point; false when there is none.
func (c *pointCursor) next() bool {
	for c.i++; c.i < len(c.pb.points); c.i++ {
		if c.match.match(&c.pb.points[c.i]) {
			return true
		}
	}
	return false
}

// cursorHeap orders open periods by their current point: begin, service,
// then commit order (period id, position).
type cursorHeap []*pointCursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	pa, pb := &a.pb.points[a.i], &b.pb.points[b.i]
	return cmp.Or(
		cmp.Compare(pa.begin, pb.begin),
		strings.Compare(a.pb.strs[pa.svc], b.pb.strs[pb.svc]),
		cmp.Compare(a.id, b.id),
		cmp.Compare(a.i, b.i),
	) < 0
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*pointCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ---- Summarize --------------------------------------------------------------------

// MaxSummaryGroups bounds the groups a summary that is not grouped by
// "time" holds while it adds up (a summary grouped by "time" finishes its
// groups a period at a time: it holds a period's).
const MaxSummaryGroups = 500_000

// groupKind is what a group key's values are.
type groupKind int

const (
	kindType   groupKind = iota // the service
	kindTime                    // the point's begin (and its end)
	kindBucket                  // the start of Begin's day, week, month or year
	kindAttr                    // a groupby or metadata value, or null
)

// summaryGroup is one row of a summary being added up.
type summaryGroup struct {
	begin, end int64 // the earliest begin and latest end of its points
	qty, price decimalSum
	keys       []any // nil, a time (int64 Unix ns) or a string
	n          int
}

// groupValue is one key value of a group: null, a time (Unix ns) or a
// string.
type groupValue struct {
	null bool
	time bool
	n    int64
	s    string
}

// summarizer adds matching points up by group and pages the groups.
type summarizer struct {
	q       store.SummaryQuery
	max     int // groups held at most, unless byTime
	kinds   []groupKind
	byTime  bool // grouped by "time": groups finish a period at a time
	groups  map[string]*summaryGroup
	key     []byte
	sum     *store.Summary
	counted int
	all     summaryGroup // the one row when ungrouped
}

func newSummarizer(q store.SummaryQuery, sum *store.Summary, maxGroups int) *summarizer {
	z := &summarizer{q: q, max: maxGroups, groups: map[string]*summaryGroup{}, sum: sum, all: summaryGroup{begin: math.MaxInt64, end: math.MinInt64}}
	for _, k := range q.GroupBy {
		kind := kindAttr
		switch {
		case k == store.KeyType:
			kind = kindType
		case k == store.KeyTime:
			kind, z.byTime = kindTime, true
		case store.BucketIndex(k) >= 0:
			kind = kindBucket
		}
		z.kinds = append(z.kinds, kind)
	}
	return z
}

// timesOnly reports whether every group key is a time key, so that a
// period whose points share one begin and end is one group.
func (z *summarizer) timesOnly() bool {
	return !slices.ContainsFunc(z.kinds, func(k groupKind) bool { return k == kindType || k == kindAttr })
}

// group finds or makes the group of vals (whose time values are begin
// and end for "time").
func (z *summarizer) group(vals []groupValue, end int64) (*summaryGroup, error) {
	z.key = z.key[:0]
	for _, v := range vals {
		switch {
		case v.null:
			z.key = append(z.key, 0)
		case v.time:
			z.key = append(z.key, 1)
			z.key = binary.BigEndian.AppendUint64(z.key, uint64(v.n))
		default:
			z.key = append(z.key, 2)
			z.key = binary.AppendUvarint(z.key, uint64(len(v.s)))
			z.key = append(z.key, v.s...)
		}
	}
	if z.byTime {
		z.key = binary.BigEndian.AppendUint64(z.key, uint64(end))
	}
	if g, ok := z.groups[string(z.key)]; ok {
		return g, nil
	}
	if !z.byTime && len(z.groups) >= z.max {
		return nil, store.Invalidf("summarize: more than %d groups: group by fewer keys, by time, or narrow the window", z.max)
	}
	g := &summaryGroup{keys: make([]any, len(vals)), begin: math.MaxInt64, end: math.MinInt64}
	for i, v := range vals {
		switch {
		case v.null:
		case v.time:
			g.keys[i] = v.n
		default:
			g.keys[i] = v.s
		}
	}
	z.groups[string(z.key)] = g
	return g, nil
}

func (g *summaryGroup) add(begin, end int64, n int, qty, price string) error {
	g.begin, g.end = min(g.begin, begin), max(g.end, end)
	g.n += n
	if err := g.qty.addString(qty, 1); err != nil {
		return fmt.Errorf("%w: qty %q: %v", errBlob, qty, err)
	}
	if err := g.price.addString(price, 1); err != nil {
		return fmt.Errorf("%w: price %q: %v", errBlob, price, err)
	}
	return nil
}

// period adds up one period's matching points.
func (z *summarizer) period(ctx context.Context, tx *sql.Tx, m *periodMeta, pq *store.PointsQuery) error {
	if z.byTime {
		// No later point begins before m.minB.
		z.flush(func(g *summaryGroup) bool { return g.begin < m.minB })
	}
	if len(pq.Filters) == 0 && m.inside(pq) && m.uniform() && z.timesOnly() {
		// Every point is one group, and the period's sums are the group's.
		var c bucketCache
		vals := make([]groupValue, len(z.kinds))
		for i, k := range z.q.GroupBy {
			vals[i] = groupValue{time: true, n: timeKey(&c, k, m.minB)}
		}
		g := &z.all
		if len(z.kinds) > 0 {
			var err error
			if g, err = z.group(vals, m.maxE); err != nil {
				return err
			}
		}
		return g.add(m.minB, m.maxE, m.points, m.qty, m.price)
	}
	pb, err := m.decode(ctx, tx)
	if err != nil {
		return err
	}
	match := newMatcher(pb, pq)
	if match.none {
		return nil
	}
	keys := make([]int64, len(z.kinds))
	for i, k := range z.kinds {
		if k == kindAttr {
			keys[i] = pb.index(z.q.GroupBy[i])
		}
	}
	vals := make([]groupValue, len(z.kinds))
	var c bucketCache
	for i := range pb.points {
		p := &pb.points[i]
		if !match.match(p) {
			continue
		}
		g := &z.all
		if len(z.kinds) > 0 {
			for j, k := range z.kinds {
				switch k {
				case kindType:
					vals[j] = groupValue{s: pb.strs[p.svc]}
				case kindTime, kindBucket:
					vals[j] = groupValue{time: true, n: timeKey(&c, z.q.GroupBy[j], p.begin)}
				case kindAttr:
					if v := pb.attr(p, keys[j]); v >= 0 {
						vals[j] = groupValue{s: pb.strs[v]}
					} else {
						vals[j] = groupValue{null: true}
					}
				}
			}
			if g, err = z.group(vals, p.end); err != nil {
				return err
			}
		}
		if err := g.add(p.begin, p.end, 1, pb.strs[p.qty], pb.strs[p.price]); err != nil {
			return err
		}
	}
	return nil
}

// flush moves the groups done says are finished into the summary, in
// order, counting them and keeping those of the page.
func (z *summarizer) flush(done func(*summaryGroup) bool) {
	var batch []*summaryGroup
	for k, g := range z.groups {
		if done(g) {
			batch = append(batch, g)
			delete(z.groups, k)
		}
	}
	slices.SortFunc(batch, func(a, b *summaryGroup) int {
		return store.CompareSummaryRows(a.begin, a.end, a.keys, b.begin, b.end, b.keys)
	})
	for _, g := range batch {
		if z.counted >= z.q.Offset && (z.q.Limit <= 0 || z.counted < z.q.Offset+z.q.Limit) {
			z.sum.Results = append(z.sum.Results, z.row(g))
		}
		z.counted++
	}
}

func (z *summarizer) row(g *summaryGroup) []any {
	row := []any{formatTime(g.begin), formatTime(g.end), g.qty.value().String(), g.price.value().String()}
	for _, v := range g.keys {
		if t, ok := v.(int64); ok {
			row = append(row, formatTime(t))
		} else {
			row = append(row, v)
		}
	}
	return row
}

// finish pages what is left.
func (z *summarizer) finish() {
	if len(z.kinds) == 0 {
		if z.all.n > 0 {
			z.sum.Total = 1
			if z.q.Offset == 0 {
				z.sum.Results = append(z.sum.Results, z.row(&z.all))
			}
		}
		return
	}
	z.flush(func(*summaryGroup) bool { return true })
	z.sum.Total = z.counted
}

// Summarize groups the matching points by q.GroupBy and pages the groups;
// quantities and prices are summed exactly as decimals. Group keys: "type"
// (the service), "time" (the period), "time-d", "time-w", "time-m",
// "time-y" (the RFC 3339 start of the UTC day, ISO week, month or year of
// Begin), any other key the point's groupby value, else its metadata value
// (null when it has neither). Rows are ordered by begin, then the key
// values (null first). A period whose points share one window, asked for
// without filters and grouped by time keys only, is added up from its
// stored sums without decoding its points.
func (s *Store) Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error) {
	if err := store.CheckSummaryQuery(q); err != nil {
		return nil, err
	}
	pq, err := store.CheckPointsQuery(q)
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	sum := &store.Summary{Columns: append([]string{"begin", "end", "qty", "rate"}, q.GroupBy...), Results: [][]any{}}
	maxGroups := s.maxGroups
	if maxGroups <= 0 {
		maxGroups = MaxSummaryGroups
	}
	z := newSummarizer(q, sum, maxGroups)
	// Sums alone answer when nothing filters and only time keys group.
	withData := len(pq.Filters) > 0 || !z.timesOnly()
	err = s.read(ctx, func(tx *sql.Tx) error {
		return scanPeriods(ctx, tx, q.Scope, &pq, withData, func(m *periodMeta) error {
			return z.period(ctx, tx, m, &pq)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("summarize: %w", err)
	}
	z.finish()
	return sum, nil
}
