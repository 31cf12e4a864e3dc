// Package fake is an in-memory implementation of the store interfaces the
// rating bridge consumes (machines and their history, rating modules,
// hashmap rules, rated periods, writer states), for tests and benchmarks.
// It keeps the contracts of store.Store that the bridge relies on: history
// windows, atomic commits refused with store.ErrConflict out of order, rated
// points ordered by begin then service and paged.
package fake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Store is the in-memory store. The zero value is not usable: call New.
type Store struct {
	mu       sync.Mutex
	machines map[string]*stack.Machine
	owners   map[string]string              // machine → owner, kept after deletion
	history  map[string][]stack.StateRecord // machine → records in time order
	modules  map[string]*store.RatingModule
	rules    hashmap.RuleSet
	periods  []store.RatedPeriod // commit order
	states   map[string]*store.ScopeState
	writers  map[[2]string]*store.WriterState

	// BeforeCommit, when set, runs inside CommitRatedPeriod before the
	// checks; an error it returns fails the commit. Tests use it to inject
	// failures and concurrent processors.
	BeforeCommit func(p *store.RatedPeriod) error
	// HistoryQueries counts StateHistory calls.
	HistoryQueries int
}

// New returns an empty store.
func New() *Store {
	return &Store{
		machines: map[string]*stack.Machine{},
		owners:   map[string]string{},
		history:  map[string][]stack.StateRecord{},
		modules:  map[string]*store.RatingModule{},
		states:   map[string]*store.ScopeState{},
		writers:  map[[2]string]*store.WriterState{},
	}
}

// AddMachine stores a machine (its State is not recorded in the history).
func (s *Store) AddMachine(m *stack.Machine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *m
	s.machines[m.ID] = &c
	s.owners[m.ID] = m.OwnerID
}

// DeleteMachine forgets a machine; its history stays.
func (s *Store) DeleteMachine(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.machines, id)
}

// Record appends state changes to machines' histories.
func (s *Store) Record(recs ...stack.StateRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		r.At = r.At.UTC()
		h := append(s.history[r.MachineID], r)
		if n := len(h); n > 1 && h[n-1].At.Before(h[n-2].At) {
			slices.SortStableFunc(h, func(a, b stack.StateRecord) int { return a.At.Compare(b.At) })
		}
		s.history[r.MachineID] = h
	}
}

// SetRules replaces the hashmap rules.
func (s *Store) SetRules(r hashmap.RuleSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = r
}

// StateHistory implements store.Machines.
func (s *Store) StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.HistoryQueries++
	ids := make([]string, 0, len(s.history))
	for id := range s.history {
		if q.OwnerID == "" || s.owners[id] == q.OwnerID {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []stack.StateRecord
	for _, id := range ids {
		h := s.history[id]
		// first record after From
		i, _ := slices.BinarySearchFunc(h, q.From, func(r stack.StateRecord, t time.Time) int {
			if r.At.After(t) {
				return 1
			}
			return -1
		})
		if i > 0 {
			out = append(out, h[i-1])
		}
		for ; i < len(h) && h[i].At.Before(q.To); i++ {
			out = append(out, h[i])
		}
	}
	return out, nil
}

// ListMachines implements store.Machines.
func (s *Store) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*stack.Machine
	for _, m := range s.machines {
		if (f.OwnerID == "" || m.OwnerID == f.OwnerID) && (f.StackID == "" || m.StackID == f.StackID) {
			c := *m
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *stack.Machine) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// SetMachineState records a state change of a stored machine.
func (s *Store) SetMachineState(id string, st machinestate.State, at time.Time) {
	s.Record(stack.StateRecord{MachineID: id, State: st, At: at})
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.machines[id]; ok {
		m.State = st
	}
}

// ListRatingModules implements store.RatingModules.
func (s *Store) ListRatingModules(ctx context.Context) ([]*store.RatingModule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.RatingModule
	for _, m := range s.modules {
		c := *m
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *store.RatingModule) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// GetRatingModule implements store.RatingModules.
func (s *Store) GetRatingModule(ctx context.Context, name string) (*store.RatingModule, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.modules[name]
	if !ok {
		return nil, fmt.Errorf("rating module %s: %w", name, store.ErrNotFound)
	}
	c := *m
	return &c, nil
}

// PutRatingModule implements store.RatingModules.
func (s *Store) PutRatingModule(ctx context.Context, m *store.RatingModule) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *m
	s.modules[m.Name] = &c
	return nil
}

// HashmapRules implements store.Hashmap's consistent read.
func (s *Store) HashmapRules(ctx context.Context) (*hashmap.RuleSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rules
	return &r, nil
}

// CommitRatedPeriod implements store.Rated.
func (s *Store) CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.BeforeCommit != nil {
		if err := s.BeforeCommit(p); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.states[p.Scope]; ok && !st.LastProcessed.Equal(p.Begin) {
		return fmt.Errorf("commit %s period %s: state is at %s: %w", p.Scope, p.Begin, st.LastProcessed, store.ErrConflict)
	}
	c := *p
	c.Points = slices.Clone(p.Points)
	s.periods = append(s.periods, c)
	s.states[p.Scope] = &store.ScopeState{Scope: p.Scope, LastProcessed: p.End.UTC()}
	return nil
}

// GetScopeState implements store.Rated.
func (s *Store) GetScopeState(ctx context.Context, scope string) (*store.ScopeState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[scope]
	if !ok {
		return nil, fmt.Errorf("scope %s: %w", scope, store.ErrNotFound)
	}
	c := *st
	return &c, nil
}

// ListScopeStates implements store.Rated.
func (s *Store) ListScopeStates(ctx context.Context) ([]*store.ScopeState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.ScopeState
	for _, st := range s.states {
		c := *st
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *store.ScopeState) int { return cmp.Compare(a.Scope, b.Scope) })
	return out, nil
}

// Periods returns the committed periods in commit order.
func (s *Store) Periods() []store.RatedPeriod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.periods)
}

// RatedPoints implements store.Rated.
func (s *Store) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.RatedPoint
	for _, p := range s.periods {
		if q.Scope != "" && p.Scope != q.Scope {
			continue
		}
		for _, pt := range p.Points {
			if pt.Begin.Before(q.Begin) || (!q.End.IsZero() && pt.End.After(q.End)) || !matches(pt, q.Filters) {
				continue
			}
			out = append(out, pt)
		}
	}
	slices.SortStableFunc(out, func(a, b store.RatedPoint) int {
		if c := a.Begin.Compare(b.Begin); c != 0 {
			return c
		}
		return cmp.Compare(a.Service, b.Service)
	})
	if q.Offset > 0 {
		out = out[min(q.Offset, len(out)):]
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func matches(pt store.RatedPoint, filters map[string]string) bool {
	for k, v := range filters {
		var got string
		var ok bool
		if k == "type" {
			got, ok = pt.Service, true
		} else if got, ok = pt.Groupby[k]; !ok {
			got, ok = pt.Metadata[k]
		}
		if !ok || got != v {
			return false
		}
	}
	return true
}

// GetWriterState implements store.WriterStates.
func (s *Store) GetWriterState(ctx context.Context, scope, writer string) (*store.WriterState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[[2]string{scope, writer}]
	if !ok {
		return nil, fmt.Errorf("writer state %s/%s: %w", scope, writer, store.ErrNotFound)
	}
	c := *w
	return &c, nil
}

// PutWriterState implements store.WriterStates.
func (s *Store) PutWriterState(ctx context.Context, w *store.WriterState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *w
	s.writers[[2]string{w.Scope, w.Writer}] = &c
	return nil
}
