// Package listcache keeps the encoded answers of machine lists, so that
// many clients listing many machines cost one store read and one encoding
// a second, not one each.
package listcache

import (
	"context"
	"math/rand/v2"
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

// MaxAge is how old the machines a list shows may be: a change made by
// another replica, and a heartbeat, shows in lists within it.
const MaxAge = time.Second

// The machines of a page are read again, while its clients keep being
// answered, once they are refreshAfter old plus up to refreshJitter (the
// jitter spreads the pages' reads over the second instead of all at once).
const (
	refreshAfter  = MaxAge * 7 / 10
	refreshJitter = MaxAge / 4
)

// Machines caches machine lists by filter. The machines of a list are read
// from the store at most once every 0.7 to 0.95 MaxAge and served for less
// than MaxAge: changes made by other replicas and heartbeats show within
// MaxAge, changes this replica makes (Invalidate) at once. A list is
// encoded at its view time, the whole second it is asked in, once a second:
// the uptime a list shows is the one a single read shows in the same
// second.
//
// A list's machines are read again before they get too old, by the one
// caller that finds them old enough while the others are still answered
// from them; so, with clients listing all the time, no caller waits for a
// read, and the pages of a long list are not all read at the same moment.
type Machines struct {
	list   Lister
	encode Encode

	version atomic.Uint64 // bumped by every machine change made here
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry
	size    int // the entries' size, about, in bytes
}

// rows are the machines of one list as read at read, when the version was
// version.
type rows struct {
	ms        []*stack.Machine
	last      string // with a page limit, the id of its last machine when more follow
	read      time.Time
	version   uint64
	refreshAt time.Time // from when a caller reads them again
}

// entry is one list: its latest rows and their encoding at view time at.
type entry struct {
	rows       *rows
	body       []byte // nil until encoded
	at         time.Time
	refreshing bool
}

// machineSize is about the memory a machine read takes.
const machineSize = 512

// size is about the memory e holds.
func (e *entry) size() int { return len(e.rows.ms)*machineSize + len(e.body) }

// New returns a cache of the machines list reads, rendered by encode.
func New(list Lister, encode Encode) *Machines {
	return &Machines{list: list, encode: encode, entries: make(map[string]*entry)}
}

// Invalidate forgets every answer: a machine changed.
func (c *Machines) Invalidate() { c.version.Add(1) }

// Get answers the list of machines f selects as of now, encoded at view
// time now truncated to the second, from the cache when fresh. With a page
// limit, last is the id of the page's last machine when more follow (""
// otherwise).
func (c *Machines) Get(ctx context.Context, f store.MachineFilter, now time.Time) (body []byte, last string, err error) {
	key := f.OwnerID + "\x00" + f.StackID + "\x00" + f.After + "\x00" + strconv.Itoa(f.Limit)
	at := now.Truncate(time.Second)
	v := c.version.Load()

	c.mu.Lock()
	e := c.entries[key]
	var r *rows
	refresh := false
	if e != nil && e.rows.version == v && fresh(e.rows.read, now) {
		r = e.rows
		if !e.refreshing && !now.Before(r.refreshAt) {
			e.refreshing, refresh = true, true
		} else if e.body != nil && e.at.Equal(at) {
			body = e.body
		}
	}
	c.mu.Unlock()
	if body != nil {
		return body, r.last, nil
	}
	if refresh {
		nr, err := c.read(ctx, key, f, v, now)
		c.mu.Lock()
		if cur := c.entries[key]; cur != nil && cur.rows == r {
			cur.refreshing = false
		}
		c.mu.Unlock()
		if err == nil {
			r = nr
		}
		// A failed read again leaves the rows in hand, fresh still.
	}
	if r == nil {
		// The version is part of the flight's key: a caller that must see
		// a change never joins a read that started before it.
		got, err, _ := c.flight.Do("read\x00"+key+"\x00"+strconv.FormatUint(v, 10), func() (any, error) {
			// A read that ended between the look above and this flight
			// answers it.
			c.mu.Lock()
			e := c.entries[key]
			c.mu.Unlock()
			if e != nil && e.rows.version == v && fresh(e.rows.read, now) {
				return e.rows, nil
			}
			return c.read(ctx, key, f, v, now)
		})
		if err != nil {
			return nil, "", err
		}
		r = got.(*rows)
	}
	body, err = c.encoded(key, r, at)
	if err != nil {
		return nil, "", err
	}
	return body, r.last, nil
}

// fresh reports whether machines read at read may still be shown at now
// (a clock that went back counts as stale).
func fresh(read, now time.Time) bool {
	age := now.Sub(read)
	return age >= 0 && age < MaxAge
}

// read reads f's machines as of now and keeps them for key unless rows
// read later (or at a later version) are kept already.
func (c *Machines) read(ctx context.Context, key string, f store.MachineFilter, v uint64, now time.Time) (*rows, error) {
	q := f
	if f.Limit > 0 {
		q.Limit = f.Limit + 1 // one more says whether another page follows
	}
	ms, err := c.list.ListMachines(context.WithoutCancel(ctx), q)
	if err != nil {
		return nil, err
	}
	r := &rows{ms: ms, read: now, version: v, refreshAt: now.Add(refreshAfter + rand.N(refreshJitter))}
	if f.Limit > 0 && len(ms) > f.Limit {
		r.ms = ms[:f.Limit]
		r.last = r.ms[len(r.ms)-1].ID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.entries[key]
	if cur == nil || cur.rows.version < v || cur.rows.version == v && !cur.rows.read.After(now) {
		if cur != nil {
			c.size -= cur.size()
		}
		e := &entry{rows: r}
		c.entries[key], c.size = e, c.size+e.size()
		c.evict(now)
	}
	return r, nil
}

// encoded returns r encoded at view time at, encoding it once however many
// callers ask at the same time, and keeps the answer while r are key's
// latest rows and at is not before the view time kept.
func (c *Machines) encoded(key string, r *rows, at time.Time) ([]byte, error) {
	got, err, _ := c.flight.Do("encode\x00"+key+"\x00"+strconv.FormatUint(r.version, 10)+"\x00"+strconv.FormatInt(r.read.UnixNano(), 10)+"\x00"+strconv.FormatInt(at.Unix(), 10), func() (any, error) {
		// An encoding that ended between the caller's look and this
		// flight answers it.
		c.mu.Lock()
		var done []byte
		if cur := c.entries[key]; cur != nil && cur.rows == r && cur.at.Equal(at) {
			done = cur.body
		}
		c.mu.Unlock()
		if done != nil {
			return done, nil
		}
		b, err := c.encode(r.ms, at)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if cur := c.entries[key]; cur != nil && cur.rows == r && (cur.body == nil || !cur.at.After(at)) {
			c.size += len(b) - len(cur.body)
			cur.body, cur.at = b, at
		}
		c.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return got.([]byte), nil
}

// maxEntries and maxSize bound the cache: pages are keyed by their
// cursor and limit, and callers choose both.
const (
	maxEntries = 4096
	maxSize    = 64 << 20
)

// evict forgets, once the cache is full, every list too old to be served
// at now; c.mu is held.
func (c *Machines) evict(now time.Time) {
	full := func() bool { return len(c.entries) > maxEntries || c.size > maxSize }
	if !full() {
		return
	}
	for k, e := range c.entries {
		if !fresh(e.rows.read, now) {
			c.forget(k, e)
		}
	}
	// Still full (that many pages asked for within MaxAge): forget lists,
	// any, until it is not.
	for k, e := range c.entries {
		if !full() {
			break
		}
		c.forget(k, e)
	}
}

// forget forgets key's entry e; c.mu is held.
func (c *Machines) forget(key string, e *entry) {
	delete(c.entries, key)
	c.size -= e.size()
}
