package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
)

// The conformance suite (store/storetest) runs every check through both
// backends; these cases cover what a backend does with a check's results.

func TestCheckPointsQuery(t *testing.T) {
	wed := time.Date(2031, 3, 5, 13, 30, 0, 0, time.UTC) // a Wednesday
	for _, c := range []struct {
		name    string
		q       SummaryQuery
		want    []PointFilter
		invalid string // what the ErrInvalid message says, when refused
	}{
		{"no filters", SummaryQuery{}, nil, ""},
		{"filters in key order, buckets at their start", SummaryQuery{Filters: map[string]string{
			"type": "instance", "size": "small", KeyWeek: wed.Format(time.RFC3339), KeyDay: "2031-03-05", KeyTime: wed.Format(time.RFC3339)}},
			[]PointFilter{
				{Key: "size", Value: "small"},
				{Key: KeyTime, Value: wed.Format(time.RFC3339), Nanos: wed.UnixNano()},
				{Key: KeyDay, Value: "2031-03-05", Nanos: time.Date(2031, 3, 5, 0, 0, 0, 0, time.UTC).UnixNano()},
				{Key: KeyWeek, Value: wed.Format(time.RFC3339), Nanos: time.Date(2031, 3, 3, 0, 0, 0, 0, time.UTC).UnixNano()},
				{Key: KeyType, Value: "instance"},
			}, ""},
		{"bad time", SummaryQuery{Filters: map[string]string{KeyMonth: "March"}}, nil, `filter time-m: "March"`},
		{"bad attribute key", SummaryQuery{Filters: map[string]string{`a"b`: "x"}}, nil, "filter: key"},
		{"begin out of range", SummaryQuery{Begin: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil, "begin 3000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pq, err := CheckPointsQuery(c.q)
			if c.invalid != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.invalid) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, c.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pq.Filters) != len(c.want) {
				t.Fatalf("filters = %+v, want %+v", pq.Filters, c.want)
			}
			for i := range c.want {
				if pq.Filters[i] != c.want[i] {
					t.Errorf("filter %d = %+v, want %+v", i, pq.Filters[i], c.want[i])
				}
			}
		})
	}
}

func TestRatedPointRecord(t *testing.T) {
	begin := time.Date(2031, 3, 5, 13, 0, 0, 0, time.UTC)
	p := &RatedPeriod{Scope: "usr-1", Begin: begin, End: begin.Add(time.Hour), Points: []RatedPoint{
		{Service: "instance", Qty: decimal.NewFromInt(1), Groupby: map[string]string{"size": "groupby"}, Metadata: map[string]string{"size": "metadata", "region": "local"}},
		{Service: "instance", Begin: begin.Add(time.Minute)},
	}}
	w, err := CheckRatedPeriod(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RatedPointRecord(p, w, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Begin != begin.UnixNano() || r.End != begin.Add(time.Hour).UnixNano() {
		t.Errorf("window = %d..%d, want the period's", r.Begin, r.End)
	}
	if r.Attrs["size"] != "groupby" || r.Attrs["region"] != "local" {
		t.Errorf("attrs = %v, want metadata overlaid by groupby", r.Attrs)
	}
	if r.Groupby != `{"size":"groupby"}` {
		t.Errorf("groupby = %s", r.Groupby)
	}
	if want := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano(); r.Buckets[BucketIndex(KeyMonth)] != want {
		t.Errorf("month bucket = %d, want %d", r.Buckets[BucketIndex(KeyMonth)], want)
	}
	r, err = RatedPointRecord(p, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Begin != begin.Add(time.Minute).UnixNano() || r.Metadata != "{}" {
		t.Errorf("point 1 = %+v, want its own begin and {} metadata", r)
	}
}

func TestCheckPutMachineDefaults(t *testing.T) {
	now := time.Date(2031, 3, 5, 13, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))
	m := &stack.Machine{StackID: "stk-1", OwnerID: "usr-1", State: machinestate.Running}
	w, err := CheckPutMachine(m, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.ID, "m-") || w.Created != now.UnixNano() || w.Updated != now.UnixNano() {
		t.Errorf("new machine = %+v, want an m- id, created and updated now", w)
	}
	m.ID, m.CreatedAt = "m-1", now.Add(-time.Hour)
	if w, err = CheckPutMachine(m, now); err != nil || w.ID != "m-1" || w.Created != now.Add(-time.Hour).UnixNano() {
		t.Errorf("known machine = %+v, %v, want its id and created_at", w, err)
	}
	m.LastSeen = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := CheckPutMachine(m, now); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "put machine m-1: last_seen") {
		t.Errorf("last_seen out of range: err = %v, want ErrInvalid naming last_seen", err)
	}
}
