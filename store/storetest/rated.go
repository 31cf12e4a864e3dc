package storetest

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// hour is 2024-01-01 (a Monday) plus h hours, UTC.
func hour(h float64) time.Time {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h * float64(time.Hour)))
}

func point(service, qty, price string, groupby, meta map[string]string) store.RatedPoint {
	return store.RatedPoint{Service: service, Unit: "hour", Qty: dec(qty), Price: dec(price), Groupby: groupby, Metadata: meta}
}

// seedRated commits the suite's rated data:
//
//	usr-1 [10h, 11h)  instance m1 s1 small 0.1/0.1, instance m2 s1 large 0.2/0.2, volume m1 small 3/0.3
//	usr-1 [11h, 12h)  instance m1 s1 small 1/1.5
//	usr-1 [12h, 7d+1h) one point for [7d, 7d+1h): instance m2 s2 large 2/0.7
//	usr-2 [Jan 31 23h, Feb 1 0h) instance m9 small 5/5, [Feb 1 0h, 1h) instance m9 small 7/7
func seedRated(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	small, large := map[string]string{"size": "small"}, map[string]string{"size": "large"}
	p3 := point("instance", "2", "0.7", map[string]string{"machine_id": "m2", "stack_id": "s2"}, large)
	p3.Begin, p3.End = hour(7*24), hour(7*24+1)
	periods := []*store.RatedPeriod{
		{Scope: "usr-1", Begin: hour(10), End: hour(11), Points: []store.RatedPoint{
			point("instance", "0.1", "0.1", map[string]string{"machine_id": "m1", "stack_id": "s1"}, small),
			point("instance", "0.2", "0.2", map[string]string{"machine_id": "m2", "stack_id": "s1"}, large),
			point("volume", "3", "0.3", map[string]string{"machine_id": "m1"}, small),
		}},
		{Scope: "usr-1", Begin: hour(11), End: hour(12), Points: []store.RatedPoint{
			point("instance", "1", "1.5", map[string]string{"machine_id": "m1", "stack_id": "s1"}, small),
		}},
		{Scope: "usr-1", Begin: hour(12), End: hour(7*24 + 1), Points: []store.RatedPoint{p3}},
		{Scope: "usr-2", Begin: hour(30*24 + 23), End: hour(31 * 24), Points: []store.RatedPoint{
			point("instance", "5", "5", map[string]string{"machine_id": "m9"}, small),
		}},
		{Scope: "usr-2", Begin: hour(31 * 24), End: hour(31*24 + 1), Points: []store.RatedPoint{
			point("instance", "7", "7", map[string]string{"machine_id": "m9"}, small),
		}},
	}
	for _, p := range periods {
		ok(t, s.CommitRatedPeriod(ctx, p))
	}
}

var ratedCases = []testCase{
	{"CommitAdvancesState", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetScopeState(ctx, "usr-1")
		is(t, err, store.ErrNotFound, "state before any period")
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(0), End: hour(1),
			Points: []store.RatedPoint{point("instance", "1", "0.5", nil, nil)}}))
		st, err := s.GetScopeState(ctx, "usr-1")
		ok(t, err)
		sameTime(t, "last processed", st.LastProcessed, hour(1))
		// An empty period still advances the state.
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(1), End: hour(2)}))
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-2", Begin: hour(5), End: hour(6)}))
		st, err = s.GetScopeState(ctx, "usr-1")
		ok(t, err)
		sameTime(t, "last processed", st.LastProcessed, hour(2))
		all, err := s.ListScopeStates(ctx)
		ok(t, err)
		if len(all) != 2 || all[0].Scope != "usr-1" || all[1].Scope != "usr-2" || !all[1].LastProcessed.Equal(hour(6)) {
			t.Errorf("ListScopeStates = %+v", all)
		}
	}},
	{"CommitRefusesSkippedOrRepeatedPeriods", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(0), End: hour(1),
			Points: []store.RatedPoint{point("instance", "1", "1", nil, nil)}}))
		bad := []struct {
			name       string
			begin, end time.Time
		}{
			{"repeated", hour(0), hour(1)},
			{"skipped", hour(2), hour(3)},
			{"overlapping", hour(0.5), hour(1.5)},
		}
		for _, b := range bad {
			err := s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: b.begin, End: b.end,
				Points: []store.RatedPoint{point("instance", "9", "9", nil, nil)}})
			is(t, err, store.ErrConflict, b.name+" period")
		}
		pts, err := s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1"})
		ok(t, err)
		eq(t, "points stored (refused periods left nothing)", len(pts), 1)
		st, err := s.GetScopeState(ctx, "usr-1")
		ok(t, err)
		sameTime(t, "state after refusals", st.LastProcessed, hour(1))
	}},
	{"Points", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		seedRated(t, s)
		pts, err := s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1"})
		ok(t, err)
		var services []string
		for _, p := range pts {
			services = append(services, p.Service)
		}
		if got := strings.Join(services, ","); got != "instance,instance,volume,instance,instance" {
			t.Fatalf("services in order = %s", got)
		}
		last := pts[4]
		eq(t, "scope", last.Scope, "usr-1")
		eq(t, "unit", last.Unit, "hour")
		sameTime(t, "point begin", last.Begin, hour(7*24))
		sameTime(t, "point end", last.End, hour(7*24+1))
		if !last.Qty.Equal(dec("2")) || !last.Price.Equal(dec("0.7")) {
			t.Errorf("qty, price = %s, %s", last.Qty, last.Price)
		}
		if !maps.Equal(last.Groupby, map[string]string{"machine_id": "m2", "stack_id": "s2"}) || !maps.Equal(last.Metadata, map[string]string{"size": "large"}) {
			t.Errorf("groupby, metadata = %v, %v", last.Groupby, last.Metadata)
		}
		sameTime(t, "period begin fills a point's zero begin", pts[0].Begin, hour(10))
		sameTime(t, "period end fills a point's zero end", pts[0].End, hour(11))

		page, err := s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1", Offset: 2, Limit: 2})
		ok(t, err)
		if len(page) != 2 || page[0].Service != "volume" || !page[1].Begin.Equal(hour(11)) {
			t.Errorf("page = %+v", page)
		}
		filtered, err := s.RatedPoints(ctx, store.SummaryQuery{Filters: map[string]string{"size": "small", "type": "instance"}})
		ok(t, err)
		eq(t, "small instances in every scope", len(filtered), 4)
		window, err := s.RatedPoints(ctx, store.SummaryQuery{Scope: "usr-1", Begin: hour(11), End: hour(12)})
		ok(t, err)
		if len(window) != 1 || !window[0].Qty.Equal(dec("1")) {
			t.Errorf("window [11h, 12h) = %+v", window)
		}
	}},
}

// row is an expected summary row: begin, end, qty, rate, then keys.
type row []any

func checkSummary(t *testing.T, s store.Store, q store.SummaryQuery, wantTotal int, wantCols []string, want []row) {
	t.Helper()
	got, err := s.Summarize(t.Context(), q)
	if err != nil {
		t.Fatalf("Summarize(%+v): %v", q, err)
	}
	desc := fmt.Sprintf("Summarize(groupby=%v filters=%v scope=%q offset=%d limit=%d)", q.GroupBy, q.Filters, q.Scope, q.Offset, q.Limit)
	if got.Total != wantTotal {
		t.Errorf("%s: total = %d, want %d", desc, got.Total, wantTotal)
	}
	if fmt.Sprint(got.Columns) != fmt.Sprint(wantCols) {
		t.Errorf("%s: columns = %v, want %v", desc, got.Columns, wantCols)
	}
	if len(got.Results) != len(want) {
		t.Fatalf("%s: %d rows %v, want %d %v", desc, len(got.Results), got.Results, len(want), want)
	}
	for i, w := range want {
		g := got.Results[i]
		if len(g) != len(w) {
			t.Fatalf("%s: row %d = %v, want %v", desc, i, g, w)
		}
		for j := range w {
			if !sameCell(j, g[j], w[j]) {
				t.Errorf("%s: row %d column %s = %#v, want %#v", desc, i, wantCols[j], g[j], w[j])
			}
		}
	}
}

// sameCell compares times as instants and qty/rate as decimals (so "0.30"
// and "0.3" agree), everything else exactly.
func sameCell(col int, got, want any) bool {
	switch col {
	case 0, 1:
		gs, ok1 := got.(string)
		wt, ok2 := want.(time.Time)
		if !ok1 || !ok2 {
			return false
		}
		gt, err := time.Parse(time.RFC3339Nano, gs)
		return err == nil && gt.Equal(wt)
	case 2, 3:
		gs, ok1 := got.(string)
		ws, ok2 := want.(string)
		if !ok1 || !ok2 {
			return false
		}
		gd, err := decimal.NewFromString(gs)
		return err == nil && gd.Equal(dec(ws))
	}
	return got == want
}

var summarizeCases = []testCase{
	{"NoGroupBy", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		cols := []string{"begin", "end", "qty", "rate"}
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1"}, 1, cols, []row{{hour(10), hour(7*24 + 1), "6.3", "2.8"}})
		checkSummary(t, s, store.SummaryQuery{}, 1, cols, []row{{hour(10), hour(31*24 + 1), "18.3", "14.8"}})
		// 0.1 + 0.2 is exactly 0.3: money is never float.
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", Begin: hour(10), End: hour(11), Filters: map[string]string{"type": "instance"}},
			1, cols, []row{{hour(10), hour(11), "0.3", "0.3"}})
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"type": "nothing"}}, 0, cols, nil)
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", Offset: 1}, 1, cols, nil)
	}},
	{"GroupByType", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"type"}}, 2,
			[]string{"begin", "end", "qty", "rate", "type"}, []row{
				{hour(10), hour(7*24 + 1), "3.3", "2.5", "instance"},
				{hour(10), hour(11), "3", "0.3", "volume"},
			})
	}},
	{"GroupByTime", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		cols := []string{"begin", "end", "qty", "rate", "time"}
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time"}}, 3, cols, []row{
			{hour(10), hour(11), "3.3", "0.6", "2024-01-01T10:00:00Z"},
			{hour(11), hour(12), "1", "1.5", "2024-01-01T11:00:00Z"},
			{hour(7 * 24), hour(7*24 + 1), "2", "0.7", "2024-01-08T00:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time"}, Offset: 1, Limit: 1}, 3, cols, []row{
			{hour(11), hour(12), "1", "1.5", "2024-01-01T11:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time"}, Offset: 2, Limit: 5}, 3, cols, []row{
			{hour(7 * 24), hour(7*24 + 1), "2", "0.7", "2024-01-08T00:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time"}, Offset: 9}, 3, cols, nil)
	}},
	{"GroupByTimeBuckets", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		cols := func(k string) []string { return []string{"begin", "end", "qty", "rate", k} }
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time-d"}}, 2, cols("time-d"), []row{
			{hour(10), hour(12), "4.3", "2.1", "2024-01-01T00:00:00Z"},
			{hour(7 * 24), hour(7*24 + 1), "2", "0.7", "2024-01-08T00:00:00Z"},
		})
		// Wednesday Jan 31 and Thursday Feb 1 share the ISO week of Monday Jan 29.
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-2", GroupBy: []string{"time-w"}}, 1, cols("time-w"), []row{
			{hour(30*24 + 23), hour(31*24 + 1), "12", "12", "2024-01-29T00:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-2", GroupBy: []string{"time-m"}}, 2, cols("time-m"), []row{
			{hour(30*24 + 23), hour(31 * 24), "5", "5", "2024-01-01T00:00:00Z"},
			{hour(31 * 24), hour(31*24 + 1), "7", "7", "2024-02-01T00:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{GroupBy: []string{"time-y"}}, 1, cols("time-y"), []row{
			{hour(10), hour(31*24 + 1), "18.3", "14.8", "2024-01-01T00:00:00Z"},
		})
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"time-w", "type"}}, 3,
			[]string{"begin", "end", "qty", "rate", "time-w", "type"}, []row{
				{hour(10), hour(12), "1.3", "1.8", "2024-01-01T00:00:00Z", "instance"},
				{hour(10), hour(11), "3", "0.3", "2024-01-01T00:00:00Z", "volume"},
				{hour(7 * 24), hour(7*24 + 1), "2", "0.7", "2024-01-08T00:00:00Z", "instance"},
			})
	}},
	{"GroupByGroupbyAndMetadataKeys", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"machine_id", "size"}}, 2,
			[]string{"begin", "end", "qty", "rate", "machine_id", "size"}, []row{
				{hour(10), hour(12), "4.1", "1.9", "m1", "small"},
				{hour(10), hour(7*24 + 1), "2.2", "0.9", "m2", "large"},
			})
		// A key a point lacks groups it under null, which sorts first.
		checkSummary(t, s, store.SummaryQuery{Scope: "usr-1", GroupBy: []string{"stack_id"}}, 3,
			[]string{"begin", "end", "qty", "rate", "stack_id"}, []row{
				{hour(10), hour(11), "3", "0.3", nil},
				{hour(10), hour(12), "1.3", "1.8", "s1"},
				{hour(7 * 24), hour(7*24 + 1), "2", "0.7", "s2"},
			})
	}},
	{"Filters", func(t *testing.T, s store.Store) {
		seedRated(t, s)
		cols := []string{"begin", "end", "qty", "rate"}
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"size": "large"}}, 1, cols,
			[]row{{hour(10), hour(7*24 + 1), "2.2", "0.9"}})
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"machine_id": "m1", "type": "instance"}}, 1, cols,
			[]row{{hour(10), hour(12), "1.1", "1.6"}})
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"time-d": "2024-01-08T00:00:00Z"}}, 1, cols,
			[]row{{hour(7 * 24), hour(7*24 + 1), "2", "0.7"}})
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"time-m": "2024-02-01T00:00:00Z"}}, 1, cols,
			[]row{{hour(31 * 24), hour(31*24 + 1), "7", "7"}})
		checkSummary(t, s, store.SummaryQuery{Filters: map[string]string{"size": "small"}, GroupBy: []string{"type"}}, 2,
			[]string{"begin", "end", "qty", "rate", "type"}, []row{
				{hour(10), hour(31*24 + 1), "13.1", "13.6", "instance"},
				{hour(10), hour(11), "3", "0.3", "volume"},
			})
		checkSummary(t, s, store.SummaryQuery{Begin: hour(11), End: hour(7*24 + 1), GroupBy: []string{"type"}}, 1,
			[]string{"begin", "end", "qty", "rate", "type"}, []row{
				{hour(11), hour(7*24 + 1), "3", "2.2", "instance"},
			})
	}},
	{"ExactDecimalSums", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		var pts []store.RatedPoint
		want := decimal.Zero
		for i := range 1000 {
			p := fmt.Sprintf("0.%03d0000000000000001", i%1000)
			pts = append(pts, point("instance", "0.1", p, nil, nil))
			want = want.Add(dec(p))
		}
		ok(t, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: hour(0), End: hour(1), Points: pts}))
		checkSummary(t, s, store.SummaryQuery{}, 1, []string{"begin", "end", "qty", "rate"},
			[]row{{hour(0), hour(1), "100", want.String()}})
	}},
}
