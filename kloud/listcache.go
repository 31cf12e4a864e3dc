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

// listCacheTTL bounds how stale a cached machine list may be: changes made
// by other replicas, heartbeats and the uptime of running machines show
// within it. Changes this replica makes show at once.
const listCacheTTL = time.Second

// listCache keeps the encoded answers of GET /api/v1/machines, so that many
// clients listing many machines cost one store read and one encoding a
// second, not one each.
type listCache struct {
	version atomic.Uint64 // bumped by every machine change made here
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedList
}

type cachedList struct {
	body    []byte
	built   time.Time
	version uint64
}

func newListCache() *listCache { return &listCache{entries: make(map[string]cachedList)} }

func (c *listCache) invalidate() { c.version.Add(1) }

// get returns the cached answer for key, building it once however many
// callers ask at the same time. An answer only older than the TTL is still
// served while one caller rebuilds it in the background; one that misses a
// change made here is rebuilt before anyone gets it.
func (c *listCache) get(key string, now time.Time, build func() ([]byte, error)) ([]byte, error) {
	v := c.version.Load()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	refresh := func() (any, error) {
		b, err := build()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if cur, ok := c.entries[key]; !ok || cur.version <= v {
			c.entries[key] = cachedList{body: b, built: now, version: v}
		}
		c.mu.Unlock()
		return b, nil
	}
	if ok && e.version == v {
		if now.Sub(e.built) >= listCacheTTL || now.Before(e.built) {
			c.flight.DoChan(key+"@"+strconv.FormatUint(v, 10), refresh)
		}
		return e.body, nil
	}
	// The version is part of the flight's key: a caller that must see a
	// change never joins a rebuild that started before it.
	body, err, _ := c.flight.Do(key+"@"+strconv.FormatUint(v, 10), refresh)
	if err != nil {
		return nil, err
	}
	return body.([]byte), nil
}

// listMachinesJSON answers a machine list, from the cache when fresh.
func (s *Server) listMachinesJSON(ctx context.Context, f store.MachineFilter) ([]byte, error) {
	return s.lists.get(f.OwnerID+"\x00"+f.StackID, s.now(), func() ([]byte, error) {
		ms, err := s.st.ListMachines(context.WithoutCancel(ctx), f)
		if err != nil {
			return nil, err
		}
		return json.Marshal(s.machineViews(ms))
	})
}

// watchedStore is the server's store with every machine change it makes
// invalidating the machine list cache. Heartbeats (TouchMachine) do not:
// last-seen times may be a TTL late.
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
