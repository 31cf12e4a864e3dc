package authcache

import (
	"context"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// Watch returns st with every user change made through it invalidating c.
// A store call that changes users or their tokens joins this wrapper when
// it joins store.Users.
func Watch(st store.Store, c *Users) store.Store { return watched{Store: st, users: c} }

type watched struct {
	store.Store
	users *Users
}

func (w watched) CreateUser(ctx context.Context, u *user.User) error {
	defer w.users.Invalidate()
	return w.Store.CreateUser(ctx, u)
}
