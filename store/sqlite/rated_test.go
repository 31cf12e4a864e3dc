package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// refPoint is a committed point as the reference model keeps it.
type refPoint struct {
	store.RatedPoint
	seq, idx int // commit order: the period's, then the point's in it
}

// randomPeriods commits random periods of two scopes: points of three
// services, some with their own window inside the period, attributes in
// groupby, metadata or both, and quantities and prices small and large.
func randomPeriods(t *testing.T, s *Store, rnd *rand.Rand) []refPoint {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2024, 1, 29, 20, 0, 0, 0, time.UTC) // a month and a week turn within the data
	var ref []refPoint
	seq := 0
	for _, scope := range []string{"usr-1", "usr-2"} {
		at := base.Add(time.Duration(rnd.IntN(3)) * time.Hour)
		for range 30 + rnd.IntN(20) {
			end := at.Add(time.Duration(1+rnd.IntN(3)) * time.Hour)
			p := &store.RatedPeriod{Scope: scope, Begin: at, End: end}
			for range rnd.IntN(6) {
				pt := store.RatedPoint{
					Service: []string{"instance", "volume", "ip"}[rnd.IntN(3)],
					Unit:    []string{"hour", "GiB"}[rnd.IntN(2)],
					Qty:     randomDecimal(rnd), Price: randomDecimal(rnd),
					Groupby:  map[string]string{"machine_id": fmt.Sprint("m", rnd.IntN(4))},
					Metadata: map[string]string{"size": []string{"small", "large", "<é>"}[rnd.IntN(3)]},
				}
				if rnd.IntN(3) == 0 {
					pt.Metadata["machine_id"] = "shadowed"
				}
				if rnd.IntN(4) == 0 {
					delete(pt.Groupby, "machine_id")
				}
				if rnd.IntN(5) == 0 {
					pt.Begin = at.Add(time.Duration(rnd.IntN(30)) * time.Minute)
					pt.End = pt.Begin.Add(time.Duration(1+rnd.IntN(60)) * time.Minute)
				}
				p.Points = append(p.Points, pt)
			}
			if err := s.CommitRatedPeriod(ctx, p); err != nil {
				t.Fatal(err)
			}
			for i, pt := range p.Points {
				pt.Scope = scope
				if pt.Begin.IsZero() {
					pt.Begin = p.Begin
				}
				if pt.End.IsZero() {
					pt.End = p.End
				}
				ref = append(ref, refPoint{RatedPoint: pt, seq: seq, idx: i})
			}
			seq++
			at = end
		}
	}
	return ref
}

func randomDecimal(rnd *rand.Rand) decimal.Decimal {
	if rnd.IntN(10) == 0 {
		return decimal.RequireFromString("123456789012345678901234.000000001")
	}
	return decimal.New(rnd.Int64N(100000)-10, -int32(rnd.IntN(6)))
}

// attr is what a key reads on a point: groupby, else metadata.
func attr(p *store.RatedPoint, k string) (string, bool) {
	if v, ok := p.Groupby[k]; ok {
		return v, true
	}
	v, ok := p.Metadata[k]
	return v, ok
}

func refMatches(p *refPoint, q store.SummaryQuery) bool {
	if (q.Scope != "" && p.Scope != q.Scope) || (!q.Begin.IsZero() && p.Begin.Before(q.Begin)) || (!q.End.IsZero() && p.End.After(q.End)) {
		return false
	}
	for k, v := range q.Filters {
		switch {
		case k == store.KeyType:
			if p.Service != v {
				return false
			}
		case k == store.KeyTime:
			if tv, _ := store.ParseTimeValue(k, v); !p.Begin.Equal(tv) {
				return false
			}
		case store.BucketIndex(k) >= 0:
			tv, _ := store.ParseTimeValue(k, v)
			if !store.BucketStart(k, p.Begin).Equal(store.BucketStart(k, tv)) {
				return false
			}
		default:
			if got, ok := attr(&p.RatedPoint, k); !ok || got != v {
				return false
			}
		}
	}
	return true
}

// refPoints is RatedPoints by the reference model.
func refPoints(ref []refPoint, q store.SummaryQuery) []refPoint {
	var out []refPoint
	for _, p := range ref {
		if refMatches(&p, q) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b refPoint) int {
		return cmp.Or(a.Begin.Compare(b.Begin), strings.Compare(a.Service, b.Service), cmp.Compare(a.seq, b.seq), cmp.Compare(a.idx, b.idx))
	})
	if q.Offset >= len(out) {
		return nil
	}
	out = out[q.Offset:]
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// refSummary is Summarize by the reference model, its rows as strings.
func refSummary(ref []refPoint, q store.SummaryQuery) (int, []string) {
	type group struct {
		begin, end time.Time
		qty, price decimal.Decimal
		vals       []*string
	}
	groups := map[string]*group{}
	for _, p := range ref {
		if !refMatches(&p, q) {
			continue
		}
		var vals []*string
		key := ""
		for _, k := range q.GroupBy {
			var v *string
			switch {
			case k == store.KeyType:
				v = &p.Service
			case k == store.KeyTime:
				s := p.Begin.Format(time.RFC3339Nano)
				v = &s
				key += p.End.String()
			case store.BucketIndex(k) >= 0:
				s := store.BucketStart(k, p.Begin).Format(time.RFC3339Nano)
				v = &s
			default:
				if s, ok := attr(&p.RatedPoint, k); ok {
					v = &s
				}
			}
			vals = append(vals, v)
			if v == nil {
				key += "\x00null|"
			} else {
				key += *v + "|"
			}
		}
		g, ok := groups[key]
		if !ok {
			g = &group{begin: p.Begin, end: p.End, vals: vals}
			groups[key] = g
		}
		if p.Begin.Before(g.begin) {
			g.begin = p.Begin
		}
		if p.End.After(g.end) {
			g.end = p.End
		}
		g.qty, g.price = g.qty.Add(p.Qty), g.price.Add(p.Price)
	}
	all := slices.Collect(maps.Values(groups))
	slices.SortFunc(all, func(a, b *group) int {
		if c := a.begin.Compare(b.begin); c != 0 {
			return c
		}
		for i := range a.vals {
			av, bv := a.vals[i], b.vals[i]
			switch {
			case av == nil && bv == nil:
			case av == nil:
				return -1
			case bv == nil:
				return 1
			default:
				if c := strings.Compare(*av, *bv); c != 0 {
					return c
				}
			}
		}
		return a.end.Compare(b.end)
	})
	var rows []string
	for _, g := range all {
		row := []string{g.begin.Format(time.RFC3339Nano), g.end.Format(time.RFC3339Nano), g.qty.String(), g.price.String()}
		for _, v := range g.vals {
			if v == nil {
				row = append(row, "<nil>")
			} else {
				row = append(row, *v)
			}
		}
		rows = append(rows, strings.Join(row, " "))
	}
	total := len(rows)
	if q.Offset >= len(rows) {
		return total, nil
	}
	rows = rows[q.Offset:]
	if q.Limit > 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	return total, rows
}

func randomQuery(rnd *rand.Rand) store.SummaryQuery {
	base := time.Date(2024, 1, 29, 20, 0, 0, 0, time.UTC)
	q := store.SummaryQuery{Filters: map[string]string{}}
	if rnd.IntN(2) == 0 {
		q.Scope = "usr-1"
	}
	if rnd.IntN(2) == 0 {
		q.Begin = base.Add(time.Duration(rnd.IntN(40*60)) * time.Minute)
	}
	if rnd.IntN(2) == 0 {
		q.End = base.Add(time.Duration(20*60+rnd.IntN(80*60)) * time.Minute)
	}
	filters := map[string]func() string{
		store.KeyType:  func() string { return []string{"instance", "volume", "none"}[rnd.IntN(3)] },
		"size":         func() string { return []string{"small", "<é>"}[rnd.IntN(2)] },
		"machine_id":   func() string { return []string{"m1", "shadowed"}[rnd.IntN(2)] },
		store.KeyDay:   func() string { return []string{"2024-01-30", "2024-01-31T05:00:00Z"}[rnd.IntN(2)] },
		store.KeyMonth: func() string { return "2024-02-01" },
		store.KeyTime:  func() string { return base.Add(time.Duration(3+rnd.IntN(5)) * time.Hour).Format(time.RFC3339) },
	}
	for k, v := range filters {
		if rnd.IntN(6) == 0 {
			q.Filters[k] = v()
		}
	}
	keys := []string{store.KeyType, store.KeyTime, store.KeyDay, store.KeyWeek, store.KeyMonth, "size", "machine_id", "absent"}
	rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	q.GroupBy = keys[:rnd.IntN(4)]
	if rnd.IntN(3) == 0 {
		q.Offset = rnd.IntN(10)
	}
	if rnd.IntN(2) == 0 {
		q.Limit = 1 + rnd.IntN(15)
	}
	return q
}

// TestRatedPeriodsAgreeWithAModel: whatever the query (scope, window,
// filters, group keys, page), RatedPoints and Summarize answer what a plain
// model of the committed points answers, for periods that overlap across
// scopes and points with windows of their own.
func TestRatedPeriodsAgreeWithAModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 99))
			s := openTest(t, t.TempDir())
			ref := randomPeriods(t, s, rnd)
			ctx := context.Background()
			// What each DescID names, and the id of each desc, across
			// every stream of the store.
			descOf, idOf := map[uint64]string{}, map[string]uint64{}
			for i := range 150 {
				q := randomQuery(rnd)
				got, err := s.RatedPoints(ctx, q)
				if err != nil {
					t.Fatalf("query %d %+v: %v", i, q, err)
				}
				var streamed []store.RatedPoint
				if err := s.EachRatedPoint(ctx, q, func(p *store.RatedPoint) error {
					streamed = append(streamed, *p)
					return nil
				}); err != nil {
					t.Fatalf("stream %d %+v: %v", i, q, err)
				}
				want := refPoints(ref, q)
				if len(got) != len(want) || len(streamed) != len(want) {
					t.Fatalf("query %d %+v: %d points, %d streamed, want %d", i, q, len(got), len(streamed), len(want))
				}
				for j := range got {
					w := want[j].RatedPoint
					for _, g := range []store.RatedPoint{got[j], streamed[j]} {
						if g.Scope != w.Scope || !g.Begin.Equal(w.Begin) || !g.End.Equal(w.End) || g.Service != w.Service || g.Unit != w.Unit ||
							!g.Qty.Equal(w.Qty) || !g.Price.Equal(w.Price) || !maps.Equal(g.Groupby, w.Groupby) || !maps.Equal(g.Metadata, w.Metadata) {
							t.Fatalf("query %d %+v: point %d = %+v, want %+v", i, q, j, g, w)
						}
					}
					if got[j].DescID != 0 {
						t.Fatalf("query %d: RatedPoints gave point %d DescID %d, want 0", i, j, got[j].DescID)
					}
					id, desc := streamed[j].DescID, fmt.Sprint(w.Groupby, w.Metadata)
					if id == 0 || (descOf[id] != "" && descOf[id] != desc) || (idOf[desc] != 0 && idOf[desc] != id) {
						t.Fatalf("query %d: streamed point %d of desc %s has DescID %d, which names %q; the desc had %d", i, j, desc, id, descOf[id], idOf[desc])
					}
					descOf[id], idOf[desc] = desc, id
				}
				sum, err := s.Summarize(ctx, q)
				if err != nil {
					t.Fatalf("summarize %d %+v: %v", i, q, err)
				}
				wantTotal, wantRows := refSummary(ref, q)
				var gotRows []string
				for _, r := range sum.Results {
					var cells []string
					for _, c := range r {
						cells = append(cells, fmt.Sprint(c))
					}
					gotRows = append(gotRows, strings.Join(cells, " "))
				}
				if sum.Total != wantTotal || !slices.Equal(gotRows, wantRows) {
					t.Fatalf("summarize %d %+v: total %d rows\n%s\nwant total %d rows\n%s", i, q, sum.Total,
						strings.Join(gotRows, "\n"), wantTotal, strings.Join(wantRows, "\n"))
				}
			}
		})
	}
}

// TestDamagedPeriodDataIsAnError: data that does not decode is an error
// naming the period, never a panic or an allocation it claims.
func TestDamagedPeriodDataIsAnError(t *testing.T) {
	p := &store.RatedPeriod{Scope: "usr-1", Begin: time.Unix(3600, 0), End: time.Unix(7200, 0), Points: []store.RatedPoint{
		{Service: "instance", Unit: "hour", Qty: decimal.New(1, 0), Price: decimal.New(5, -2), Groupby: map[string]string{"machine_id": "m1"}},
	}}
	row, err := encodePeriod(p, store.PeriodWrite{Begin: 3600e9, End: 7200e9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodePeriod(row.data, row.begin, row.end); err != nil {
		t.Fatalf("decode of the encoded period: %v", err)
	}
	huge := []byte{blobVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}
	cases := map[string][]byte{
		"empty":                 nil,
		"other version":         append([]byte{9}, row.data[1:]...),
		"cut short":             row.data[:len(row.data)-3],
		"trailing bytes":        append(slices.Clone(row.data), 0),
		"dictionary too large":  huge,
		"index past dictionary": append(slices.Clone(row.data[:len(row.data)-1]), 0x7f),
	}
	for name, data := range cases {
		if _, err := decodePeriod(data, row.begin, row.end); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// Every cut and every flipped byte: an error or a decode, never a panic.
	for i := range row.data {
		if _, err := decodePeriod(row.data[:i], row.begin, row.end); err == nil && i < len(row.data) {
			t.Errorf("cut at %d: decoded", i)
		}
		flipped := slices.Clone(row.data)
		flipped[i] ^= 0xff
		_, _ = decodePeriod(flipped, row.begin, row.end)
	}
}

// FuzzDecodePeriod: no data makes a decode panic.
func FuzzDecodePeriod(f *testing.F) {
	p := &store.RatedPeriod{Scope: "usr-1", Begin: time.Unix(3600, 0), End: time.Unix(7200, 0), Points: []store.RatedPoint{
		{Service: "instance", Qty: decimal.New(1, 0), Price: decimal.New(5, -2), Metadata: map[string]string{"size": "s"}},
	}}
	row, err := encodePeriod(p, store.PeriodWrite{Begin: 3600e9, End: 7200e9})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(row.data)
	f.Fuzz(func(t *testing.T, data []byte) {
		pb, err := decodePeriod(data, 0, 1)
		if err != nil {
			return
		}
		for i := range pb.points {
			_, _ = pb.ratedPoint("s", &pb.points[i], nil)
		}
	})
}

// TestRatedPointsMoveToPeriods: migration 11 moves the rows of the former
// rated_points table into rated periods, and drops the table.
func TestRatedPointsMoveToPeriods(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	// Back to before migration 11: the former table, with two periods of
	// one scope (one holding a point with its own window) and one of
	// another.
	migs, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	ddl := regexp.MustCompile(`(?s)CREATE TABLE rated_points \(.*?\n\);`).FindString(migs[0].sql)
	if ddl == "" {
		t.Fatal("no rated_points table in migration 1")
	}
	h := func(n int) int64 { return int64(n) * int64(time.Hour) }
	stmts := []string{ddl, `DROP TABLE rated_periods`, `DELETE FROM schema_migrations WHERE version = 11`}
	for _, st := range stmts {
		if _, err := s.w.ExecContext(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	legacy := []struct {
		scope      string
		begin, end int64
		service    string
		qty, price string
		groupby    string
	}{
		{"usr-1", h(10), h(11), "instance", "1", "0.5", `{"machine_id":"m1"}`},
		{"usr-1", h(10), h(11), "volume", "3", "0.3", `{}`},
		{"usr-1", h(11), h(12), "instance", "1", "1.5", `{"machine_id":"m1"}`},
		{"usr-1", h(11) + int64(time.Minute), h(11) + 2*int64(time.Minute), "instance", "0.1", "0.01", `{"machine_id":"m2"}`},
		{"usr-2", h(10), h(11), "instance", "2", "2", `{"machine_id":"m9"}`},
		// Ends before it begins: the former table took it; it moves
		// ending where it begins.
		{"usr-3", h(10), h(9), "instance", "1", "1", `{"machine_id":"m8"}`},
	}
	for _, r := range legacy {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO rated_points (scope, begin_at, end_at, service, unit, qty, price, groupby, metadata, attrs, day_at, week_at, month_at, year_at)
			VALUES (?, ?, ?, ?, 'hour', ?, ?, ?, '{"size":"small"}', x'', 0, 0, 0, 0)`, r.scope, r.begin, r.end, r.service, r.qty, r.price, r.groupby); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openTest(t, dir)
	var tables int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'rated_points'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("rated_points still there (%d, %v)", tables, err)
	}
	pts, err := s.RatedPoints(ctx, store.SummaryQuery{Filters: map[string]string{"size": "small"}, End: time.Unix(0, h(12))})
	if err != nil {
		t.Fatal(err)
	}
	n := len(pts)
	pts = slices.DeleteFunc(pts, func(p store.RatedPoint) bool {
		if p.Scope == "usr-3" {
			if !p.Begin.Equal(p.End) || !p.Begin.Equal(time.Unix(0, h(10))) {
				t.Errorf("the point that ended before it began moved as %s-%s", p.Begin, p.End)
			}
			return true
		}
		return false
	})
	if len(pts) != n-1 {
		t.Errorf("the point that ended before it began did not move")
	}
	var got []string
	for _, p := range pts {
		got = append(got, fmt.Sprintf("%s %s-%s %s %s %s %s %s", p.Scope, p.Begin.Format("15:04"), p.End.Format("15:04"), p.Service, p.Qty, p.Price, p.Groupby["machine_id"], p.Metadata["size"]))
	}
	want := []string{
		"usr-1 10:00-11:00 instance 1 0.5 m1 small",
		"usr-2 10:00-11:00 instance 2 2 m9 small",
		"usr-1 10:00-11:00 volume 3 0.3  small",
		"usr-1 11:00-12:00 instance 1 1.5 m1 small",
		"usr-1 11:01-11:02 instance 0.1 0.01 m2 small",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("moved points:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sum, err := s.Summarize(ctx, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{store.KeyTime}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 3 || sum.Results[0][3] != "0.8" {
		t.Fatalf("summary of usr-1 by time = %+v", sum)
	}
}

// TestSummaryGroupsAreBounded: a summary not grouped by time holds at most
// maxGroups groups and says so past them; grouped by time it finishes a
// period's groups at a time and has no such bound.
func TestSummaryGroupsAreBounded(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	begin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for h := range 3 {
		p := &store.RatedPeriod{Scope: "usr-1", Begin: begin.Add(time.Duration(h) * time.Hour), End: begin.Add(time.Duration(h+1) * time.Hour)}
		for m := range 4 {
			p.Points = append(p.Points, store.RatedPoint{Service: "instance", Qty: decimal.New(1, 0), Price: decimal.New(1, -2),
				Groupby: map[string]string{"machine_id": fmt.Sprint("m", m)}})
		}
		if err := s.CommitRatedPeriod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	s.maxGroups = 3
	_, err := s.Summarize(ctx, store.SummaryQuery{GroupBy: []string{"machine_id"}})
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "more than 3 groups") {
		t.Fatalf("4 groups over a bound of 3: %v", err)
	}
	sum, err := s.Summarize(ctx, store.SummaryQuery{GroupBy: []string{store.KeyTime, "machine_id"}, Limit: 2, Offset: 5})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 12 || len(sum.Results) != 2 || sum.Results[0][5] != "m1" || sum.Results[1][5] != "m2" {
		t.Fatalf("by time and machine: %+v", sum)
	}
}

// TestDescIDsNameOneDesc: a store that forgets its descs (more than it
// remembers) gives them new ids, never one that named another desc.
func TestDescIDsNameOneDesc(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	s.descs.max = 2
	begin := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for h := range 3 {
		p := &store.RatedPeriod{Scope: "usr-1", Begin: begin.Add(time.Duration(h) * time.Hour), End: begin.Add(time.Duration(h+1) * time.Hour)}
		for m := range 3 {
			p.Points = append(p.Points, store.RatedPoint{Service: "instance", Unit: "hour", Qty: decimal.NewFromInt(1), Price: decimal.NewFromInt(1),
				Groupby: map[string]string{"machine_id": fmt.Sprint("m", m)}, Metadata: map[string]string{}})
		}
		if err := s.CommitRatedPeriod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	descOf := map[uint64]string{}
	ids := map[string]int{}
	for range 2 {
		if err := s.EachRatedPoint(ctx, store.SummaryQuery{Scope: "usr-1"}, func(p *store.RatedPoint) error {
			m := p.Groupby["machine_id"]
			if d, ok := descOf[p.DescID]; p.DescID == 0 || ok && d != m {
				t.Fatalf("machine %s: DescID %d, which named %s", m, p.DescID, d)
			}
			if _, ok := descOf[p.DescID]; !ok {
				ids[m]++
			}
			descOf[p.DescID] = m
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) != 3 || ids["m0"] < 2 {
		t.Errorf("ids given per machine %v: want new ids once the store forgot", ids)
	}
}

// TestReusedEncoderEncodesAsNew: an encoder reset after a period encodes
// the next to the same bytes as a new one.
func TestReusedEncoderEncodesAsNew(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 5))
	e := newBlobEncoder(0)
	for i := range 20 {
		p := &store.RatedPeriod{Scope: "usr-1", Begin: time.Unix(3600, 0), End: time.Unix(7200, 0)}
		for j := range rnd.IntN(50) {
			gb := map[string]string{"machine_id": fmt.Sprint("m", rnd.IntN(9))}
			if j%3 == 0 {
				gb["stack_id"] = fmt.Sprint("st", i)
			}
			p.Points = append(p.Points, store.RatedPoint{Service: []string{"instance", "volume"}[rnd.IntN(2)], Unit: "hour",
				Qty: randomDecimal(rnd), Price: randomDecimal(rnd), Groupby: gb, Metadata: map[string]string{"size": fmt.Sprint(rnd.IntN(3))}})
		}
		w := store.PeriodWrite{Begin: 3600e9, End: 7200e9}
		want, err := encodePeriod(p, w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.encode(p, w)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.data, want.data) || got.qty != want.qty || got.price != want.price {
			t.Fatalf("period %d: a reused encoder wrote %d bytes (sums %s, %s), a new one %d (%s, %s)", i, len(got.data), got.qty, got.price, len(want.data), want.qty, want.price)
		}
		e.reset()
	}
}
