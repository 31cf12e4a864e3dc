package storetest

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

var hashmapCases = []testCase{
	{"ServicesFieldsGroups", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		hasPrefix(t, "service", svc.ID, "svc-")
		is(t, s.CreateHashmapService(ctx, &hashmap.Service{Name: "instance"}), store.ErrConflict, "duplicate service name")
		vol := &hashmap.Service{Name: "volume"}
		ok(t, s.CreateHashmapService(ctx, vol))
		got, err := s.GetHashmapService(ctx, svc.ID)
		ok(t, err)
		eq(t, "service name", got.Name, "instance")
		svcs, err := s.ListHashmapServices(ctx)
		ok(t, err)
		eq(t, "services", len(svcs), 2)

		f := &hashmap.Field{ServiceID: svc.ID, Name: "size"}
		ok(t, s.CreateHashmapField(ctx, f))
		hasPrefix(t, "field", f.ID, "fld-")
		is(t, s.CreateHashmapField(ctx, &hashmap.Field{ServiceID: svc.ID, Name: "size"}), store.ErrConflict, "duplicate field name in a service")
		ok(t, s.CreateHashmapField(ctx, &hashmap.Field{ServiceID: vol.ID, Name: "size"})) // same name, other service
		is(t, s.CreateHashmapField(ctx, &hashmap.Field{ServiceID: "svc-missing", Name: "x"}), store.ErrNotFound, "field of a missing service")
		gotF, err := s.GetHashmapField(ctx, f.ID)
		ok(t, err)
		eq(t, "field service", gotF.ServiceID, svc.ID)
		eq(t, "field name", gotF.Name, "size")
		fields, err := s.ListHashmapFields(ctx, svc.ID)
		ok(t, err)
		if len(fields) != 1 || fields[0].ID != f.ID {
			t.Errorf("ListHashmapFields(instance) = %v", fields)
		}
		all, err := s.ListHashmapFields(ctx, "")
		ok(t, err)
		eq(t, "all fields", len(all), 2)

		g := &hashmap.Group{Name: "instance_uptime"}
		ok(t, s.CreateHashmapGroup(ctx, g))
		hasPrefix(t, "group", g.ID, "grp-")
		is(t, s.CreateHashmapGroup(ctx, &hashmap.Group{Name: "instance_uptime"}), store.ErrConflict, "duplicate group name")
		gotG, err := s.GetHashmapGroup(ctx, g.ID)
		ok(t, err)
		eq(t, "group name", gotG.Name, "instance_uptime")
		groups, err := s.ListHashmapGroups(ctx)
		ok(t, err)
		eq(t, "groups", len(groups), 1)

		ok(t, s.DeleteHashmapField(ctx, f.ID))
		_, err = s.GetHashmapField(ctx, f.ID)
		is(t, err, store.ErrNotFound, "deleted field")
		ok(t, s.DeleteHashmapGroup(ctx, g.ID))
		_, err = s.GetHashmapGroup(ctx, g.ID)
		is(t, err, store.ErrNotFound, "deleted group")
		ok(t, s.DeleteHashmapService(ctx, vol.ID))
		_, err = s.GetHashmapService(ctx, vol.ID)
		is(t, err, store.ErrNotFound, "deleted service")
		for what, err := range map[string]error{
			"delete missing service": s.DeleteHashmapService(ctx, "svc-missing"),
			"delete missing field":   s.DeleteHashmapField(ctx, "fld-missing"),
			"delete missing group":   s.DeleteHashmapGroup(ctx, "grp-missing"),
		} {
			is(t, err, store.ErrNotFound, what)
		}
	}},
	{"Mappings", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		f := &hashmap.Field{ServiceID: svc.ID, Name: "size"}
		ok(t, s.CreateHashmapField(ctx, f))
		g := &hashmap.Group{Name: "g"}
		ok(t, s.CreateHashmapGroup(ctx, g))

		sm := &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostFlat, Cost: dec("0.001")}
		ok(t, s.CreateHashmapMapping(ctx, sm))
		hasPrefix(t, "mapping", sm.ID, "map-")
		fm := &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostRate, Cost: dec("1.5"), GroupID: g.ID}
		ok(t, s.CreateHashmapMapping(ctx, fm))
		got, err := s.GetHashmapMapping(ctx, fm.ID)
		ok(t, err)
		eq(t, "field", got.FieldID, f.ID)
		eq(t, "service", got.ServiceID, "")
		eq(t, "group", got.GroupID, g.ID)
		eq(t, "value", got.Value, "small")
		eq(t, "type", got.Type, hashmap.CostRate)
		if !got.Cost.Equal(dec("1.5")) {
			t.Errorf("cost = %s", got.Cost)
		}
		is(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostRate, Cost: dec("2")}), store.ErrConflict, "second service mapping in the default group")
		ok(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostRate, Cost: dec("2"), GroupID: g.ID}))
		is(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostFlat, Cost: dec("1"), GroupID: g.ID}), store.ErrConflict, "same field value in the group")
		ok(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostFlat, Cost: dec("1")}))
		ok(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: f.ID, Value: "large", Type: hashmap.CostFlat, Cost: dec("3"), GroupID: g.ID}))
		is(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: "svc-missing", Type: hashmap.CostFlat, Cost: dec("1")}), store.ErrNotFound, "mapping of a missing service")
		is(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: "fld-missing", Value: "v", Type: hashmap.CostFlat, Cost: dec("1")}), store.ErrNotFound, "mapping of a missing field")
		is(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostFlat, Cost: dec("1"), GroupID: "grp-missing"}), store.ErrNotFound, "mapping in a missing group")

		upd := *fm
		upd.Value, upd.Cost, upd.Type, upd.GroupID = "medium", dec("0.25"), hashmap.CostFlat, ""
		ok(t, s.UpdateHashmapMapping(ctx, &upd))
		got, err = s.GetHashmapMapping(ctx, fm.ID)
		ok(t, err)
		if got.Value != "medium" || !got.Cost.Equal(dec("0.25")) || got.Type != hashmap.CostFlat || got.GroupID != "" {
			t.Errorf("updated mapping = %+v", got)
		}
		upd.Value = "small" // collides with the default group's small mapping
		is(t, s.UpdateHashmapMapping(ctx, &upd), store.ErrConflict, "update into a duplicate")
		is(t, s.UpdateHashmapMapping(ctx, &hashmap.Mapping{ID: "map-missing", ServiceID: svc.ID, Type: hashmap.CostFlat}), store.ErrNotFound, "update missing")
		all, err := s.ListHashmapMappings(ctx)
		ok(t, err)
		eq(t, "mappings", len(all), 5)
		ok(t, s.DeleteHashmapMapping(ctx, fm.ID))
		_, err = s.GetHashmapMapping(ctx, fm.ID)
		is(t, err, store.ErrNotFound, "deleted mapping")
		is(t, s.DeleteHashmapMapping(ctx, fm.ID), store.ErrNotFound, "delete twice")
	}},
	{"Thresholds", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		f := &hashmap.Field{ServiceID: svc.ID, Name: "vcpus"}
		ok(t, s.CreateHashmapField(ctx, f))
		th := &hashmap.Threshold{ServiceID: svc.ID, Level: dec("50"), Type: hashmap.CostRate, Cost: dec("0.98")}
		ok(t, s.CreateHashmapThreshold(ctx, th))
		hasPrefix(t, "threshold", th.ID, "thr-")
		ok(t, s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: svc.ID, Level: dec("200"), Type: hashmap.CostRate, Cost: dec("0.95")}))
		is(t, s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: svc.ID, Level: dec("50.0"), Type: hashmap.CostFlat, Cost: dec("1")}), store.ErrConflict, "same level (50.0 = 50)")
		ft := &hashmap.Threshold{FieldID: f.ID, Level: dec("4"), Type: hashmap.CostFlat, Cost: dec("0.5")}
		ok(t, s.CreateHashmapThreshold(ctx, ft))
		got, err := s.GetHashmapThreshold(ctx, th.ID)
		ok(t, err)
		if got.ServiceID != svc.ID || got.FieldID != "" || !got.Level.Equal(dec("50")) || got.Type != hashmap.CostRate || !got.Cost.Equal(dec("0.98")) {
			t.Errorf("threshold = %+v", got)
		}
		upd := *ft
		upd.Level, upd.Cost = dec("8"), dec("0.75")
		ok(t, s.UpdateHashmapThreshold(ctx, &upd))
		got, err = s.GetHashmapThreshold(ctx, ft.ID)
		ok(t, err)
		if !got.Level.Equal(dec("8")) || !got.Cost.Equal(dec("0.75")) || got.FieldID != f.ID {
			t.Errorf("updated threshold = %+v", got)
		}
		is(t, s.UpdateHashmapThreshold(ctx, &hashmap.Threshold{ID: "thr-missing", ServiceID: svc.ID, Type: hashmap.CostFlat}), store.ErrNotFound, "update missing")
		all, err := s.ListHashmapThresholds(ctx)
		ok(t, err)
		eq(t, "thresholds", len(all), 3)
		ok(t, s.DeleteHashmapThreshold(ctx, th.ID))
		is(t, s.DeleteHashmapThreshold(ctx, th.ID), store.ErrNotFound, "delete twice")
	}},
	{"DeleteServiceCascades", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		other := &hashmap.Service{Name: "volume"}
		ok(t, s.CreateHashmapService(ctx, other))
		f := &hashmap.Field{ServiceID: svc.ID, Name: "size"}
		ok(t, s.CreateHashmapField(ctx, f))
		sm := &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostFlat, Cost: dec("1")}
		fm := &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostFlat, Cost: dec("1")}
		st := &hashmap.Threshold{ServiceID: svc.ID, Level: dec("1"), Type: hashmap.CostRate, Cost: dec("0.9")}
		ft := &hashmap.Threshold{FieldID: f.ID, Level: dec("1"), Type: hashmap.CostRate, Cost: dec("0.9")}
		keep := &hashmap.Mapping{ServiceID: other.ID, Type: hashmap.CostFlat, Cost: dec("2")}
		for _, m := range []*hashmap.Mapping{sm, fm, keep} {
			ok(t, s.CreateHashmapMapping(ctx, m))
		}
		for _, th := range []*hashmap.Threshold{st, ft} {
			ok(t, s.CreateHashmapThreshold(ctx, th))
		}
		ok(t, s.DeleteHashmapService(ctx, svc.ID))
		_, err := s.GetHashmapField(ctx, f.ID)
		is(t, err, store.ErrNotFound, "field of a deleted service")
		for _, id := range []string{sm.ID, fm.ID} {
			_, err := s.GetHashmapMapping(ctx, id)
			is(t, err, store.ErrNotFound, "mapping of a deleted service")
		}
		for _, id := range []string{st.ID, ft.ID} {
			_, err := s.GetHashmapThreshold(ctx, id)
			is(t, err, store.ErrNotFound, "threshold of a deleted service")
		}
		_, err = s.GetHashmapMapping(ctx, keep.ID)
		ok(t, err)
	}},
	{"DeleteFieldCascades", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		f := &hashmap.Field{ServiceID: svc.ID, Name: "size"}
		ok(t, s.CreateHashmapField(ctx, f))
		fm := &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostFlat, Cost: dec("1")}
		ok(t, s.CreateHashmapMapping(ctx, fm))
		ft := &hashmap.Threshold{FieldID: f.ID, Level: dec("1"), Type: hashmap.CostRate, Cost: dec("0.9")}
		ok(t, s.CreateHashmapThreshold(ctx, ft))
		ok(t, s.DeleteHashmapField(ctx, f.ID))
		_, err := s.GetHashmapMapping(ctx, fm.ID)
		is(t, err, store.ErrNotFound, "mapping of a deleted field")
		_, err = s.GetHashmapThreshold(ctx, ft.ID)
		is(t, err, store.ErrNotFound, "threshold of a deleted field")
		_, err = s.GetHashmapService(ctx, svc.ID)
		ok(t, err)
	}},
	{"DeleteGroupUngroups", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		g := &hashmap.Group{Name: "g"}
		ok(t, s.CreateHashmapGroup(ctx, g))
		m := &hashmap.Mapping{ServiceID: svc.ID, Type: hashmap.CostFlat, Cost: dec("1"), GroupID: g.ID}
		ok(t, s.CreateHashmapMapping(ctx, m))
		th := &hashmap.Threshold{ServiceID: svc.ID, Level: dec("10"), Type: hashmap.CostRate, Cost: dec("0.9"), GroupID: g.ID}
		ok(t, s.CreateHashmapThreshold(ctx, th))
		ok(t, s.DeleteHashmapGroup(ctx, g.ID))
		gotM, err := s.GetHashmapMapping(ctx, m.ID)
		ok(t, err)
		eq(t, "mapping group after group delete", gotM.GroupID, "")
		gotT, err := s.GetHashmapThreshold(ctx, th.ID)
		ok(t, err)
		eq(t, "threshold group after group delete", gotT.GroupID, "")
	}},
	{"Rules", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		empty, err := s.HashmapRules(ctx)
		ok(t, err)
		if len(empty.Services)+len(empty.Fields)+len(empty.Groups)+len(empty.Mappings)+len(empty.Thresholds) != 0 {
			t.Errorf("rules of an empty store = %+v", empty)
		}
		svc := &hashmap.Service{Name: "instance"}
		ok(t, s.CreateHashmapService(ctx, svc))
		f := &hashmap.Field{ServiceID: svc.ID, Name: "size"}
		ok(t, s.CreateHashmapField(ctx, f))
		g := &hashmap.Group{Name: "g"}
		ok(t, s.CreateHashmapGroup(ctx, g))
		ok(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: f.ID, Value: "small", Type: hashmap.CostFlat, Cost: dec("0.01"), GroupID: g.ID}))
		ok(t, s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: svc.ID, Level: dec("50"), Type: hashmap.CostRate, Cost: dec("0.98")}))
		r, err := s.HashmapRules(ctx)
		ok(t, err)
		if len(r.Services) != 1 || len(r.Fields) != 1 || len(r.Groups) != 1 || len(r.Mappings) != 1 || len(r.Thresholds) != 1 {
			t.Fatalf("rules = %d services, %d fields, %d groups, %d mappings, %d thresholds; want one of each",
				len(r.Services), len(r.Fields), len(r.Groups), len(r.Mappings), len(r.Thresholds))
		}
		if r.Mappings[0].GroupID != g.ID || r.Mappings[0].FieldID != f.ID || !r.Mappings[0].Cost.Equal(dec("0.01")) {
			t.Errorf("mapping = %+v", r.Mappings[0])
		}
		if !r.Thresholds[0].Level.Equal(dec("50")) || r.Fields[0].ServiceID != svc.ID {
			t.Errorf("threshold = %+v, field = %+v", r.Thresholds[0], r.Fields[0])
		}
	}},
}
