package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/store"
)

var auditCases = []testCase{
	{"AppendList", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		e := &audit.Entry{At: t0, Actor: "usr-a", Action: "stack.apply", Target: "stack/stk-1", OwnerID: "usr-a", RequestID: "req-1", Detail: "d"}
		ok(t, s.AppendAudit(ctx, e))
		hasPrefix(t, "entry", e.ID, "aud-")
		eq(t, "outcome filled in", e.Outcome, audit.OutcomeOK)
		ok(t, s.AppendAudit(ctx, &audit.Entry{At: t0.Add(time.Second), Actor: audit.System, Action: "machine.stop.idle", Target: "machine/m-1", OwnerID: "usr-b", Outcome: audit.Failed("boom")}))
		ok(t, s.AppendAudit(ctx, &audit.Entry{At: t0.Add(2 * time.Second), Actor: "usr-b", Action: "machine.stop", Target: "machine/m-1", OwnerID: "usr-b"}))
		all, err := s.ListAudit(ctx, audit.Query{})
		ok(t, err)
		if len(all) != 3 || all[0].Action != "machine.stop" || all[2].Action != "stack.apply" {
			t.Fatalf("ListAudit = %v, want the three entries newest first", actions(all))
		}
		got := all[2]
		eq(t, "id", got.ID, e.ID)
		sameTime(t, "at", got.At, t0)
		eq(t, "actor", got.Actor, "usr-a")
		eq(t, "target", got.Target, "stack/stk-1")
		eq(t, "owner", got.OwnerID, "usr-a")
		eq(t, "request id", got.RequestID, "req-1")
		eq(t, "detail", got.Detail, "d")
		eq(t, "failed outcome", all[1].Outcome, "error: boom")
	}},
	{"Filters", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for i, e := range []audit.Entry{
			{Actor: "usr-a", Action: "stack.apply", Target: "stack/s1", OwnerID: "usr-a"},
			{Actor: audit.System, Action: "machine.stop.idle", Target: "machine/m1", OwnerID: "usr-a"},
			{Actor: "usr-b", Action: "stack.apply", Target: "stack/s2", OwnerID: "usr-b"},
			{Actor: "usr-admin", Action: "machine.stop", Target: "machine/m2", OwnerID: "usr-b"},
		} {
			e.At = t0.Add(time.Duration(i) * time.Minute)
			ok(t, s.AppendAudit(ctx, &e))
		}
		for _, tt := range []struct {
			name string
			q    audit.Query
			want string
		}{
			{"actor", audit.Query{Actor: "usr-b"}, "stack.apply@stack/s2"},
			{"target", audit.Query{Target: "machine/m1"}, "machine.stop.idle@machine/m1"},
			{"since", audit.Query{Since: t0.Add(2 * time.Minute)}, "machine.stop@machine/m2 stack.apply@stack/s2"},
			{"visible to an actor or owner", audit.Query{VisibleTo: "usr-a"}, "machine.stop.idle@machine/m1 stack.apply@stack/s1"},
			{"visible to an owner of another's action", audit.Query{VisibleTo: "usr-b"}, "machine.stop@machine/m2 stack.apply@stack/s2"},
			{"limit", audit.Query{Limit: 1}, "machine.stop@machine/m2"},
			{"nothing", audit.Query{Actor: "usr-nobody"}, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tt.q)
				ok(t, err)
				eq(t, "entries", actions(got), tt.want)
			})
		}
	}},
	{"Pages", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		const n = 7
		for i := range n {
			// Two entries share each instant: the page boundary must
			// still neither repeat nor skip one.
			ok(t, s.AppendAudit(ctx, &audit.Entry{At: t0.Add(time.Duration(i/2) * time.Second), Actor: "usr-a", Action: fmt.Sprintf("a%d", i)}))
		}
		seen := map[string]bool{}
		before := ""
		for page := 0; page < n; page++ {
			got, err := s.ListAudit(ctx, audit.Query{Limit: 3, Before: before})
			ok(t, err)
			if len(got) == 0 {
				break
			}
			for i, e := range got {
				if seen[e.ID] {
					t.Fatalf("entry %s (%s) listed twice", e.ID, e.Action)
				}
				seen[e.ID] = true
				if i > 0 && got[i-1].At.Before(e.At) {
					t.Fatalf("page not newest first: %v", actions(got))
				}
			}
			before = got[len(got)-1].ID
		}
		eq(t, "entries over all pages", len(seen), n)
		_, err := s.ListAudit(ctx, audit.Query{Before: "aud-missing"})
		is(t, err, store.ErrInvalid, "a cursor naming no entry")
	}},
	{"Prune", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		for i := range 4 {
			ok(t, s.AppendAudit(ctx, &audit.Entry{At: t0.Add(time.Duration(i) * time.Hour), Actor: "usr-a", Action: fmt.Sprintf("a%d", i)}))
		}
		n, err := s.PruneAudit(ctx, t0.Add(2*time.Hour))
		ok(t, err)
		eq(t, "pruned", n, int64(2))
		left, err := s.ListAudit(ctx, audit.Query{})
		ok(t, err)
		eq(t, "left", actions(left), "a3@ a2@")
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		is(t, s.AppendAudit(ctx, nil), store.ErrInvalid, "nil entry")
		is(t, s.AppendAudit(ctx, &audit.Entry{Action: "x"}), store.ErrInvalid, "no actor")
		is(t, s.AppendAudit(ctx, &audit.Entry{Actor: "x"}), store.ErrInvalid, "no action")
	}},
}

// actions shows entries as "action@target ..." in order.
func actions(es []*audit.Entry) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Action + "@" + e.Target)
	}
	return b.String()
}
