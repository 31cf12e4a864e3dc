package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

const userCols = `id, name, role, coalesce(token_hash, ''), created_at`

func scanUser(sc scanner) (*user.User, error) {
	var u user.User
	var role string
	var created int64
	if err := sc.Scan(&u.ID, &u.Name, &role, &u.TokenHash, &created); err != nil {
		return nil, err
	}
	u.Role = user.Role(role)
	u.CreatedAt = store.FromNanos(created)
	return &u, nil
}

// CreateUser stores a new user; names and token hashes are unique.
func (s *Store) CreateUser(ctx context.Context, u *user.User) error {
	w, err := store.CheckUser(u, s.now())
	if err != nil {
		return err
	}
	id, created, c := w.ID, w.CreatedAt, w.Created
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, u.Name, string(u.Role), nullStr(u.TokenHash), c)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	u.ID, u.CreatedAt = id, created
	return nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (*user.User, error) {
	if err := store.CheckKey("get user", "id", id); err != nil {
		return nil, err
	}
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get user: %w", noRows(err, "user "+id))
	}
	return u, nil
}

// GetUserByTokenHash returns the user whose token hashes to hash.
func (s *Store) GetUserByTokenHash(ctx context.Context, hash string) (*user.User, error) {
	if err := store.CheckKey("get user by token", "hash", hash); err != nil {
		return nil, err
	}
	u, err := scanUser(s.hot.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE token_hash = ?`, hash))
	if err != nil {
		return nil, fmt.Errorf("get user by token: %w", noRows(err, "user with that token"))
	}
	return u, nil
}

// ListUsers returns every user, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]*user.User, error) {
	out, err := list(ctx, s.r, scanUser, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}
