package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

var stateVersionCases = []testCase{
	{"SerialsIncrease", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.LatestStateVersion(ctx, "stk-1")
		is(t, err, store.ErrNotFound, "latest before any")
		state1 := []byte(`{"version":4,"serial":1,"lineage":"L","resources":[{"password":"hunter2"}]}`)
		ok(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 1, Lineage: "L", JobID: "job-1", State: state1, CreatedAt: t0}))
		is(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 1, Lineage: "L", State: state1}), store.ErrStaleSerial, "equal serial")
		is(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 0, Lineage: "L", State: state1}), store.ErrStaleSerial, "lower serial")
		state3 := []byte(`{"version":4,"serial":3}`)
		ok(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 3, Lineage: "L", JobID: "job-2", State: state3, CreatedAt: t0.Add(time.Minute)}))
		is(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 2, Lineage: "L", State: state1}), store.ErrStaleSerial, "serial below the latest")
		// Another stack's serials are its own.
		ok(t, s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-2", Serial: 1, Lineage: "M", State: []byte("{}")}))

		latest, err := s.LatestStateVersion(ctx, "stk-1")
		ok(t, err)
		eq(t, "latest serial", latest.Serial, int64(3))
		eq(t, "latest job", latest.JobID, "job-2")
		eq(t, "latest lineage", latest.Lineage, "L")
		if !bytes.Equal(latest.State, state3) {
			t.Errorf("latest state = %s, want %s", latest.State, state3)
		}
		sameTime(t, "created_at", latest.CreatedAt, t0.Add(time.Minute))
		versions, err := s.ListStateVersions(ctx, "stk-1")
		ok(t, err)
		if len(versions) != 2 || versions[0].Serial != 1 || versions[1].Serial != 3 {
			t.Fatalf("ListStateVersions = %v, want serials 1, 3", versions)
		}
		for _, v := range versions {
			if v.State != nil {
				t.Errorf("ListStateVersions returned State for serial %d", v.Serial)
			}
		}
		eq(t, "first job", versions[0].JobID, "job-1")
		sameTime(t, "first created_at", versions[0].CreatedAt, t0)
		none, err := s.ListStateVersions(ctx, "stk-none")
		ok(t, err)
		eq(t, "versions of an unknown stack", len(none), 0)
	}},
}

var ratingModuleCases = []testCase{
	{"PutGetList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetRatingModule(ctx, "hashmap")
		is(t, err, store.ErrNotFound, "get before put")
		ok(t, s.PutRatingModule(ctx, &store.RatingModule{Name: "noop", Enabled: true, Priority: 1}))
		ok(t, s.PutRatingModule(ctx, &store.RatingModule{Name: "hashmap", Enabled: false, Priority: 5}))
		ok(t, s.PutRatingModule(ctx, &store.RatingModule{Name: "hashmap", Enabled: true, Priority: 10}))
		got, err := s.GetRatingModule(ctx, "hashmap")
		ok(t, err)
		eq(t, "enabled", got.Enabled, true)
		eq(t, "priority", got.Priority, 10)
		all, err := s.ListRatingModules(ctx)
		ok(t, err)
		if len(all) != 2 {
			t.Fatalf("ListRatingModules = %v, want 2", all)
		}
		byName := map[string]*store.RatingModule{}
		for _, m := range all {
			byName[m.Name] = m
		}
		if m := byName["noop"]; m == nil || !m.Enabled || m.Priority != 1 {
			t.Errorf("noop = %+v", m)
		}
	}},
}

var writerStateCases = []testCase{
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		_, err := s.GetWriterState(ctx, "usr-1", "csv")
		is(t, err, store.ErrNotFound, "get before put")
		w := &store.WriterState{Scope: "usr-1", Writer: "csv", LastWritten: t0, Total: decimal.RequireFromString("12.3456789012345678")}
		ok(t, s.PutWriterState(ctx, w))
		got, err := s.GetWriterState(ctx, "usr-1", "csv")
		ok(t, err)
		sameTime(t, "last written", got.LastWritten, t0)
		if !got.Total.Equal(w.Total) {
			t.Errorf("total = %s, want %s", got.Total, w.Total)
		}
		eq(t, "scope", got.Scope, "usr-1")
		eq(t, "writer", got.Writer, "csv")
		w.LastWritten, w.Total = t0.Add(time.Hour), w.Total.Add(decimal.RequireFromString("0.0000000000000001"))
		ok(t, s.PutWriterState(ctx, w))
		got, err = s.GetWriterState(ctx, "usr-1", "csv")
		ok(t, err)
		sameTime(t, "last written after update", got.LastWritten, t0.Add(time.Hour))
		if !got.Total.Equal(decimal.RequireFromString("12.3456789012345679")) {
			t.Errorf("total = %s, want 12.3456789012345679", got.Total)
		}
		_, err = s.GetWriterState(ctx, "usr-1", "json")
		is(t, err, store.ErrNotFound, "another writer")
		_, err = s.GetWriterState(ctx, "usr-2", "csv")
		is(t, err, store.ErrNotFound, "another scope")
	}},
}
