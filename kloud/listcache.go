package kloud

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// listCache keeps the encoded answers of GET /api/v1/machines, so that many
// clients listing many machines cost one store read and one encoding a
// second, not one each. An answer is kept for the second it was computed
// at (its view time, see viewTime) and no longer: changes made by other
// replicas and heartbeats show within a second, changes this replica makes
// at once, and the uptime a list shows is the one a single read shows in
// the same second.
type listCache struct {
	version atomic.Uint64 // bumped by every machine change made here
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedList
}

type cachedList struct {
	body    []byte
	at      time.Time // the view time the answer was computed at
	version uint64
}

func newListCache() *listCache { return &listCache{entries: make(map[string]cachedList)} }

func (c *listCache) invalidate() { c.version.Add(1) }

// get returns the answer for key at view time at (a whole second), building
// it once however many callers ask at the same time. A cached answer is
// served only for the same view time and when no change was made here
// since it was built.
func (c *listCache) get(key string, at time.Time, build func(at time.Time) ([]byte, error)) ([]byte, error) {
	v := c.version.Load()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.version == v && e.at.Equal(at) {
		return e.body, nil
	}
	// The version and the view time are part of the flight's key: a caller
	// that must see a change never joins a build that started before it,
	// nor one computed for another second.
	flight := key + "@" + strconv.FormatUint(v, 10) + "@" + strconv.FormatInt(at.Unix(), 10)
	body, err, _ := c.flight.Do(flight, func() (any, error) {
		b, err := build(at)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if cur, ok := c.entries[key]; !ok || cur.version < v || cur.version == v && !cur.at.After(at) {
			c.entries[key] = cachedList{body: b, at: at, version: v}
		}
		c.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return body.([]byte), nil
}

// listMachinesJSON answers a machine list, from the cache when fresh.
func (s *Server) listMachinesJSON(ctx context.Context, f store.MachineFilter) ([]byte, error) {
	return s.lists.get(f.OwnerID+"\x00"+f.StackID, s.viewTime(), func(at time.Time) ([]byte, error) {
		ms, err := s.st.ListMachines(context.WithoutCancel(ctx), f)
		if err != nil {
			return nil, err
		}
		return json.Marshal(s.machineViews(ms, at))
	})
}

// watchedStore is the server's store with every machine change it makes
// invalidating the machine list cache. Heartbeats (TouchMachine) do not:
// last-seen times may be a second late (see agentReport).
type watchedStore struct {
	store.Store
	lists *listCache
}

func (w watchedStore) PutMachine(ctx context.Context, m *stack.Machine) error {
	defer w.lists.invalidate()
	return w.Store.PutMachine(ctx, m)
}

func (w watchedStore) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	defer w.lists.invalidate()
	return w.Store.SetMachineState(ctx, id, state, reason, at)
}

func (w watchedStore) DeleteMachine(ctx context.Context, id string) error {
	defer w.lists.invalidate()
	return w.Store.DeleteMachine(ctx, id)
}
