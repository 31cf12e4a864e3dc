// Package authcache remembers for a moment whom a token belongs to, so that
// a client sending many requests with one token costs one store read a
// second, not one a request.
package authcache

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kloud/kloud/user"
)

// Lookup finds the user holding a token hash (store.ErrNotFound when no
// one does).
type Lookup func(ctx context.Context, hash string) (*user.User, error)

// TTL is how long a user found for a token is served without asking the
// store again: a change made on another replica shows within it, as in the
// machine lists.
const TTL = time.Second

// maxEntries bounds the cache. Only tokens that belong to a user are kept
// (an unknown token is asked about every time and never stored), so it
// holds at most one entry a user's token.
const maxEntries = 4096

// Users caches Lookup's answers by token hash. An answer is served for TTL
// after it was read and only while no user change was made here since
// (Invalidate): a token revoked or a role changed through this replica
// counts at once, through another one within TTL.
type Users struct {
	lookup Lookup
	now    func() time.Time

	version atomic.Uint64 // bumped by every user change made here
	flight  singleflight.Group

	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	u       user.User
	read    time.Time
	version uint64
}

// New returns a cache of lookup's answers on the clock now.
func New(lookup Lookup, now func() time.Time) *Users {
	return &Users{lookup: lookup, now: now, entries: make(map[string]entry)}
}

// Invalidate forgets every answer: a user changed.
func (c *Users) Invalidate() { c.version.Add(1) }

// Get returns the user holding the token hash. Each call gets its own
// copy, so a caller changing it changes no one else's.
func (c *Users) Get(ctx context.Context, hash string) (*user.User, error) {
	v, now := c.version.Load(), c.now()
	if u, ok := c.cached(hash, v, now); ok {
		return &u, nil
	}
	// The version is part of the flight's key: a caller that must see a
	// change never joins a read that started before it.
	got, err, _ := c.flight.Do(hash+"@"+strconv.FormatUint(v, 10), func() (any, error) {
		// A read that ended between the look above and this flight
		// answers it.
		if u, ok := c.cached(hash, v, now); ok {
			return u, nil
		}
		u, err := c.lookup(context.WithoutCancel(ctx), hash)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.entries) >= maxEntries {
			c.evict(now)
		}
		if cur, ok := c.entries[hash]; !ok || cur.version <= v {
			c.entries[hash] = entry{u: *u, read: now, version: v}
		}
		return *u, nil
	})
	if err != nil {
		return nil, err
	}
	u := got.(user.User)
	return &u, nil
}

// cached returns the answer for hash when it may be served at version v
// and time now.
func (c *Users) cached(hash string, v uint64, now time.Time) (user.User, bool) {
	c.mu.Lock()
	e, ok := c.entries[hash]
	c.mu.Unlock()
	if ok && e.version == v && fresh(e.read, now) {
		return e.u, true
	}
	return user.User{}, false
}

// fresh reports whether an answer read at read may still be served at now
// (a clock that went back counts as stale).
func fresh(read, now time.Time) bool {
	age := now.Sub(read)
	return age >= 0 && age < TTL
}

// evict forgets the answers no longer served and, when all of them still
// are, every answer; c.mu is held.
func (c *Users) evict(now time.Time) {
	v := c.version.Load()
	for k, e := range c.entries {
		if e.version != v || !fresh(e.read, now) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) >= maxEntries {
		clear(c.entries)
	}
}
