package authcache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/authcache"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
	"github.com/kloud/kloud/user"
)

// counting counts the store reads the cache makes and can fail them.
type counting struct {
	store.Store
	reads atomic.Int64
	fail  error
}

func (c *counting) GetUserByTokenHash(ctx context.Context, hash string) (*user.User, error) {
	c.reads.Add(1)
	if c.fail != nil {
		return nil, c.fail
	}
	return c.Store.GetUserByTokenHash(ctx, hash)
}

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// TestUsers walks the cache through a sequence on a real SQLite store,
// counting reads: one read a TTL per token, a new one after every user
// change made through the watched store, none kept for an unknown token or
// a failed read.
func TestUsers(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	raw, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	for _, u := range []*user.User{
		{Name: "ann", Role: user.RoleAdmin, TokenHash: "hash-ann", CreatedAt: t0},
		{Name: "bob", Role: user.RoleMember, TokenHash: "hash-bob", CreatedAt: t0},
	} {
		if err := raw.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	lookups := &counting{Store: raw}
	clk := &clock{now: t0}
	users := authcache.New(lookups.GetUserByTokenHash, clk.Now)
	st := authcache.Watch(raw, users)
	errDown := errors.New("store down")

	steps := []struct {
		name   string
		change func() error
		fail   error
		hash   string
		at     time.Duration
		reads  int64  // store reads so far
		want   string // the user's name, or the error wanted
		notErr bool   // want is ErrNotFound
	}{
		{name: "first use reads", hash: "hash-ann", reads: 1, want: "ann"},
		{name: "again is cached", hash: "hash-ann", at: 500 * time.Millisecond, reads: 1, want: "ann"},
		{name: "another token reads", hash: "hash-bob", at: 500 * time.Millisecond, reads: 2, want: "bob"},
		{name: "after the TTL reads", hash: "hash-ann", at: authcache.TTL, reads: 3, want: "ann"},
		{name: "a clock gone back reads", hash: "hash-ann", reads: 4, want: "ann"},
		{name: "an unknown token reads", hash: "hash-eve", reads: 5, notErr: true},
		{name: "and is not remembered", hash: "hash-eve", reads: 6, notErr: true},
		{name: "a failed read is not remembered", fail: errDown, hash: "hash-bob", at: 2 * authcache.TTL, reads: 7},
		{name: "the next read succeeds", hash: "hash-bob", at: 2 * authcache.TTL, reads: 8, want: "bob"},
		{name: "a user change counts at once", change: func() error {
			return st.CreateUser(ctx, &user.User{Name: "eve", Role: user.RoleMember, TokenHash: "hash-eve", CreatedAt: t0})
		}, hash: "hash-bob", at: 2 * authcache.TTL, reads: 9, want: "bob"},
		{name: "for every token", hash: "hash-eve", at: 2 * authcache.TTL, reads: 10, want: "eve"},
		{name: "then cached again", hash: "hash-eve", at: 2 * authcache.TTL, reads: 10, want: "eve"},
	}
	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		lookups.fail = s.fail
		clk.set(t0.Add(s.at))
		u, err := users.Get(ctx, s.hash)
		switch {
		case s.fail != nil:
			if !errors.Is(err, s.fail) {
				t.Errorf("%s: %v, want %v", s.name, err, s.fail)
			}
		case s.notErr:
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %v, %v; want not found", s.name, u, err)
			}
		case err != nil:
			t.Errorf("%s: %v", s.name, err)
		case u.Name != s.want || u.TokenHash != s.hash:
			t.Errorf("%s: user %s (%s), want %s (%s)", s.name, u.Name, u.TokenHash, s.want, s.hash)
		}
		if n := lookups.reads.Load(); n != s.reads {
			t.Errorf("%s: %d store reads, want %d", s.name, n, s.reads)
		}
	}

	// Every caller gets its own copy.
	a, err := users.Get(ctx, "hash-ann")
	if err != nil {
		t.Fatal(err)
	}
	a.Role = user.RoleMember
	if b, err := users.Get(ctx, "hash-ann"); err != nil || b.Role != user.RoleAdmin {
		t.Errorf("after a caller changed its copy: %v, %v; want the admin unchanged", b, err)
	}
}

// TestUsersConcurrent: many callers at once with one token cost one read,
// and callers of many tokens keep the cache bounded.
func TestUsersConcurrent(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var reads atomic.Int64
	lookup := func(_ context.Context, hash string) (*user.User, error) {
		reads.Add(1)
		return &user.User{ID: "usr-" + hash, Name: hash, Role: user.RoleMember, TokenHash: hash}, nil
	}
	users := authcache.New(lookup, func() time.Time { return t0 })
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if u, err := users.Get(ctx, "hash-1"); err != nil || u.Name != "hash-1" {
				t.Errorf("get: %v, %v", u, err)
			}
		})
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("50 callers at once: %d reads, want 1", n)
	}

	// Far more tokens than the cache holds: each is still answered.
	for i := range 10000 {
		h := fmt.Sprintf("hash-%d", i)
		if u, err := users.Get(ctx, h); err != nil || u.Name != h {
			t.Fatalf("get %s: %v, %v", h, u, err)
		}
	}
}
