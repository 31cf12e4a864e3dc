package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/store"
)

// pagingCases: lists that take a store.Page answer it in their key order,
// and following pages visits every record once, filters included.
var pagingCases = []testCase{
	{"MachinesInPages", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		want := map[string]bool{}
		for i := range 7 {
			owner := "usr-a"
			if i%3 == 0 {
				owner = "usr-b"
			}
			m := newMachine(fmt.Sprintf("m-%02d", i), owner, "stk-1")
			ok(t, s.PutMachine(ctx, m))
			// The page's machines carry their state and last-seen record.
			ok(t, s.SetMachineState(ctx, m.ID, machinestate.Running, "up", t0.Add(time.Minute)))
			ok(t, s.TouchMachine(ctx, m.ID, t0.Add(2*time.Minute), "v1"))
			if owner == "usr-a" {
				want[m.ID] = true
			}
		}
		for _, limit := range []int{1, 2, 4, 100} {
			seen := map[string]bool{}
			f := store.MachineFilter{OwnerID: "usr-a", Page: store.Page{Limit: limit}}
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatalf("limit %d: more than 10 pages", limit)
				}
				page, err := s.ListMachines(ctx, f)
				ok(t, err)
				if len(page) > limit {
					t.Fatalf("limit %d: a page of %d", limit, len(page))
				}
				for i, m := range page {
					if seen[m.ID] || !want[m.ID] {
						t.Fatalf("limit %d: %s listed twice or not of the filter", limit, m.ID)
					}
					if i > 0 && page[i-1].ID >= m.ID {
						t.Fatalf("limit %d: page not in id order: %s then %s", limit, page[i-1].ID, m.ID)
					}
					seen[m.ID] = true
					eq(t, "paged machine state", m.State, machinestate.Running)
					sameTime(t, "paged machine last seen", m.LastSeen, t0.Add(2*time.Minute))
				}
				if len(page) < limit {
					break
				}
				f.After = page[len(page)-1].ID
			}
			eq(t, fmt.Sprintf("limit %d: machines visited", limit), len(seen), len(want))
		}
	}},
}
