// Package listcache keeps the encoded answers of machine lists, so that
// many clients listing many machines cost one store read and one encoding
// a second, not one each.
package listcache

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Lister is what the cache reads machines from.
type Lister interface {
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
}

// Encode renders machines as they are at view time at.
type Encode func(ms []*stack.Machine, at time.Time) ([]byte, error)

// Machines caches encoded machine lists by filter. An answer is kept for
// the second it was computed at (its view time) and no longer: changes
// made by other replicas and heartbeats show within a second, changes this
// replica makes (Invalidate) at once, and the uptime a list shows is the
// one a single read shows in the same second.
type Machines struct {
	list   Lister
	encode Encode

	version atomic.Uint64 // bumped by every machine change made here
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	answer
	at      time.Time // the view time the answer was computed at
	version uint64
}

// answer is one page: its encoded body and, when more machines follow,
// the id of its last machine.
type answer struct {
	body []byte
	last string
}

// New returns a cache of the machines list reads, rendered by encode.
func New(list Lister, encode Encode) *Machines {
	return &Machines{list: list, encode: encode, entries: make(map[string]entry)}
}

// Invalidate forgets every answer: a machine changed.
func (c *Machines) Invalidate() { c.version.Add(1) }

// Get answers the list of machines f selects at view time at (a whole
// second), from the cache when fresh. With a page limit, last is the id of
// the page's last machine when more follow ("" otherwise).
func (c *Machines) Get(ctx context.Context, f store.MachineFilter, at time.Time) (body []byte, last string, err error) {
	key := f.OwnerID + "\x00" + f.StackID + "\x00" + f.After + "\x00" + strconv.Itoa(f.Limit)
	a, err := c.get(key, at, func(at time.Time) (answer, error) {
		q := f
		if f.Limit > 0 {
			q.Limit = f.Limit + 1 // one more says whether another page follows
		}
		ms, err := c.list.ListMachines(context.WithoutCancel(ctx), q)
		if err != nil {
			return answer{}, err
		}
		var last string
		if f.Limit > 0 && len(ms) > f.Limit {
			ms = ms[:f.Limit]
			last = ms[len(ms)-1].ID
		}
		b, err := c.encode(ms, at)
		return answer{body: b, last: last}, err
	})
	return a.body, a.last, err
}

// get returns the answer for key at view time at, building it once however
// many callers ask at the same time. A cached answer is served only for
// the same view time and when no change was made here since it was built.
func (c *Machines) get(key string, at time.Time, build func(at time.Time) (answer, error)) (answer, error) {
	v := c.version.Load()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.version == v && e.at.Equal(at) {
		return e.answer, nil
	}
	// The version and the view time are part of the flight's key: a caller
	// that must see a change never joins a build that started before it,
	// nor one computed for another second.
	flight := key + "@" + strconv.FormatUint(v, 10) + "@" + strconv.FormatInt(at.Unix(), 10)
	body, err, _ := c.flight.Do(flight, func() (any, error) {
		b, err := build(at)
		if err != nil {
			return answer{}, err
		}
		c.mu.Lock()
		if cur, ok := c.entries[key]; !ok || cur.version < v || cur.version == v && !cur.at.After(at) {
			c.entries[key] = entry{answer: b, at: at, version: v}
			c.evict(at)
		}
		c.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return answer{}, err
	}
	return body.(answer), nil
}

// maxEntries bounds the cache: pages are keyed by their cursor, and
// callers choose cursors.
const maxEntries = 4096

// evict forgets, once the cache is full, every answer older than the view
// time at (they are served to no one any more); c.mu is held.
func (c *Machines) evict(at time.Time) {
	if len(c.entries) <= maxEntries {
		return
	}
	for k, e := range c.entries {
		if e.at.Before(at) {
			delete(c.entries, k)
		}
	}
	// Still full (that many pages asked for in one second): forget
	// answers, any, until it is not.
	for k := range c.entries {
		if len(c.entries) <= maxEntries {
			break
		}
		delete(c.entries, k)
	}
}
