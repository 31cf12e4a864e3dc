package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kloud/kloud/store"
)

// Ready reports whether the database answers and every migration this
// binary knows is applied.
func (s *Store) Ready(ctx context.Context) error {
	migs, err := loadMigrations()
	if err != nil {
		return err
	}
	want := migs[len(migs)-1].version
	var have sql.NullInt64
	err = s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&have)
	})
	if err != nil {
		return fmt.Errorf("read schema version: %w: %w", store.ErrUnavailable, err)
	}
	if int(have.Int64) != want {
		return fmt.Errorf("migrations not current: database at %d, this binary at %d", have.Int64, want)
	}
	return nil
}
