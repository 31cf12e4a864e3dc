package listcache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/listcache"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

// countingLister counts the store reads the cache makes.
type countingLister struct {
	listcache.Lister
	reads atomic.Int64
}

func (c *countingLister) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	c.reads.Add(1)
	return c.Lister.ListMachines(ctx, f)
}

type view struct {
	ID    string `json:"id"`
	State string `json:"state"`
	At    int64  `json:"at"`
}

func encode(ms []*stack.Machine, at time.Time) ([]byte, error) {
	out := make([]view, 0, len(ms))
	for _, m := range ms {
		out = append(out, view{ID: m.ID, State: m.State.String(), At: at.Unix()})
	}
	return json.Marshal(out)
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// newLists returns a SQLite store, the cache's view of it counting reads,
// the cache, and the store watched by the cache.
func newLists(t *testing.T) (*sqlite.Store, *countingLister, *listcache.Machines, store.Store) {
	raw, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	lister := &countingLister{Lister: raw}
	lists := listcache.New(lister, encode)
	return raw, lister, lists, listcache.Watch(raw, lists)
}

// TestMachineLists walks the cache through a sequence on a real SQLite
// store, counting reads: one read a second per filter, a new one after
// every machine change made through the watched store, none for a
// heartbeat.
func TestMachineLists(t *testing.T) {
	ctx := context.Background()
	raw, lister, lists, st := newLists(t)
	put := func(id, owner string) *stack.Machine {
		m := &stack.Machine{ID: id, StackID: "stk-1", OwnerID: owner, Provider: "sandbox", Label: "sandbox_machine." + id,
			State: machinestate.Running, CreatedAt: t0}
		if err := raw.PutMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := put("m-1", "usr-1")
	put("m-2", "usr-2")
	all, mine := store.MachineFilter{}, store.MachineFilter{OwnerID: "usr-1"}

	steps := []struct {
		name   string
		change func() error
		filter store.MachineFilter
		at     time.Duration
		reads  int64  // store reads so far
		want   string // the machines listed, with states
	}{
		{name: "first list reads", filter: all, reads: 1, want: "m-1 Running, m-2 Running"},
		{name: "same second is cached", filter: all, reads: 1, want: "m-1 Running, m-2 Running"},
		{name: "another filter reads", filter: mine, reads: 2, want: "m-1 Running"},
		{name: "the next second reads", filter: all, at: time.Second, reads: 3, want: "m-1 Running, m-2 Running"},
		{name: "an earlier second reads again", filter: all, reads: 4, want: "m-1 Running, m-2 Running"},
		{name: "the later second is still cached", filter: all, at: time.Second, reads: 4, want: "m-1 Running, m-2 Running"},
		{name: "a heartbeat changes nothing", change: func() error { return st.TouchMachine(ctx, "m-1", t0.Add(time.Second), "0.1.0") },
			filter: all, at: time.Second, reads: 4, want: "m-1 Running, m-2 Running"},
		{name: "a state change shows at once", change: func() error {
			return st.SetMachineState(ctx, "m-1", machinestate.Stopped, "", t0.Add(time.Second))
		}, filter: all, at: time.Second, reads: 5, want: "m-1 Stopped, m-2 Running"},
		{name: "in every filter", filter: mine, at: time.Second, reads: 6, want: "m-1 Stopped"},
		{name: "a put shows at once", change: func() error { m1.Label = "renamed"; return st.PutMachine(ctx, m1) },
			filter: mine, at: time.Second, reads: 7, want: "m-1 Stopped"},
		{name: "a delete shows at once", change: func() error { return st.DeleteMachine(ctx, "m-2") },
			filter: all, at: time.Second, reads: 8, want: "m-1 Stopped"},
	}
	// Pages are cached apart, and say whether another follows.
	page := store.MachineFilter{Page: store.Page{Limit: 1}}
	if _, last, err := lists.Get(ctx, page, t0); err != nil || last != "m-1" {
		t.Errorf("first page of 1: last %q, %v; want m-1", last, err)
	}
	page.After = "m-1"
	if body, last, err := lists.Get(ctx, page, t0); err != nil || last != "" || !strings.Contains(string(body), "m-2") {
		t.Errorf("page after m-1: %s, last %q, %v; want m-2 and no more", body, last, err)
	}
	if n := lister.reads.Load(); n != 2 {
		t.Errorf("two pages: %d store reads, want 2", n)
	}
	lister.reads.Store(0)

	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		at := t0.Add(s.at)
		body, _, err := lists.Get(ctx, s.filter, at)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var vs []view
		if err := json.Unmarshal(body, &vs); err != nil {
			t.Fatalf("%s: %s: %v", s.name, body, err)
		}
		got := ""
		for i, v := range vs {
			if i > 0 {
				got += ", "
			}
			got += v.ID + " " + v.State
			if v.At != at.Unix() {
				t.Errorf("%s: %s viewed at %d, want %d", s.name, v.ID, v.At, at.Unix())
			}
		}
		if got != s.want {
			t.Errorf("%s: listed %q, want %q", s.name, got, s.want)
		}
		if n := lister.reads.Load(); n != s.reads {
			t.Errorf("%s: %d store reads, want %d", s.name, n, s.reads)
		}
	}
}

// TestMachineListsReadAhead: a list's machines are read again by the one
// caller that finds them due (0.7 to 0.95 MaxAge old), while the others are
// answered from them; a change made behind the cache's back (another
// replica) shows within MaxAge; a new second re-encodes the machines in
// hand without reading; machines MaxAge old are never shown.
func TestMachineListsReadAhead(t *testing.T) {
	ctx := context.Background()
	raw, lister, lists, _ := newLists(t)
	m := &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox", Label: "sandbox_machine.m",
		State: machinestate.Running, CreatedAt: t0}
	if err := raw.PutMachine(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Past the latest moment a read ahead may be due.
	const due = time.Second - time.Millisecond
	steps := []struct {
		name   string
		change func() error
		at     time.Duration
		reads  int64
		want   string
	}{
		{name: "first list reads", reads: 1, want: "m-1 Running"},
		{name: "another replica stops it", change: func() error {
			return raw.SetMachineState(ctx, "m-1", machinestate.Stopped, "", t0.Add(time.Millisecond))
		}, at: time.Millisecond, reads: 1, want: "m-1 Running"},
		{name: "once due, read ahead", at: due, reads: 2, want: "m-1 Stopped"},
		{name: "then served", at: due, reads: 2, want: "m-1 Stopped"},
		{name: "the next second is encoded from them", at: time.Second, reads: 2, want: "m-1 Stopped"},
		{name: "due again, read ahead", at: due + due, reads: 3, want: "m-1 Stopped"},
		{name: "MaxAge old, read before answering", change: func() error {
			return raw.SetMachineState(ctx, "m-1", machinestate.Running, "", t0.Add(2*time.Second))
		}, at: due + due + listcache.MaxAge, reads: 4, want: "m-1 Running"},
	}
	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		at := t0.Add(s.at)
		body, _, err := lists.Get(ctx, store.MachineFilter{}, at)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var vs []view
		if err := json.Unmarshal(body, &vs); err != nil {
			t.Fatalf("%s: %s: %v", s.name, body, err)
		}
		if len(vs) != 1 || vs[0].ID+" "+vs[0].State != s.want || vs[0].At != at.Unix() {
			t.Errorf("%s: listed %s, want %s at %d", s.name, body, s.want, at.Unix())
		}
		if n := lister.reads.Load(); n != s.reads {
			t.Errorf("%s: %d store reads, want %d", s.name, n, s.reads)
		}
	}
}

// TestMachineListsConcurrent: many callers of one list at once cost one
// read and one encoding, and all get the same answer.
func TestMachineListsConcurrent(t *testing.T) {
	ctx := context.Background()
	raw, lister, _, _ := newLists(t)
	if err := raw.PutMachine(ctx, &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox",
		Label: "sandbox_machine.m", State: machinestate.Running, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	var encodes atomic.Int64
	lists := listcache.New(lister, func(ms []*stack.Machine, at time.Time) ([]byte, error) {
		encodes.Add(1)
		return encode(ms, at)
	})
	bodies := make([][]byte, 50)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			body, _, err := lists.Get(ctx, store.MachineFilter{}, t0)
			if err != nil {
				t.Error(err)
			}
			bodies[i] = body
		})
	}
	wg.Wait()
	if r, e := lister.reads.Load(), encodes.Load(); r != 1 || e != 1 {
		t.Errorf("50 callers at once: %d reads, %d encodings; want 1 and 1", r, e)
	}
	for i, b := range bodies {
		if string(b) != string(bodies[0]) {
			t.Errorf("caller %d got %s, caller 0 %s", i, b, bodies[0])
		}
	}
}

// TestMachineListsBounded: callers choose cursors, so more pages than the
// cache holds are asked for; each is answered, and the cache forgets pages
// (asked again, some are read again) instead of growing.
func TestMachineListsBounded(t *testing.T) {
	ctx := context.Background()
	raw, lister, lists, _ := newLists(t)
	if err := raw.PutMachine(ctx, &stack.Machine{ID: "m-9", StackID: "stk-1", OwnerID: "usr-1", Provider: "sandbox",
		Label: "sandbox_machine.m", State: machinestate.Running, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	const pages = 5000
	for range 2 {
		for i := range pages {
			body, _, err := lists.Get(ctx, store.MachineFilter{Page: store.Page{After: fmt.Sprintf("m-%05d", i), Limit: 1}}, t0)
			if err != nil || !strings.Contains(string(body), "m-9") {
				t.Fatalf("page %d: %s, %v", i, body, err)
			}
		}
	}
	// The first round read every page; the second, those forgotten.
	if n := lister.reads.Load() - pages; n < pages-4096 {
		t.Errorf("asked again for %d pages: %d read again, want at least %d", pages, n, pages-4096)
	}
}
