package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// prepared runs read queries as statements prepared once on each read
// connection (database/sql keeps them per connection) instead of at every
// call: parsing and planning a machine page's three-table join cost about
// as much as reading its hundred rows. It is a queryer for the hot reads;
// the queries are this package's own constants, a few shapes each.
type prepared struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// maxPrepared bounds the statements kept; a query past it runs unprepared.
const maxPrepared = 64

func newPrepared(db *sql.DB) *prepared { return &prepared{db: db, m: make(map[string]*sql.Stmt)} }

// stmt returns query's statement, preparing it on first use; nil when
// maxPrepared are kept already or it does not prepare (the caller then
// runs it unprepared, which reports the error).
func (p *prepared) stmt(ctx context.Context, query string) *sql.Stmt {
	p.mu.Lock()
	st, ok := p.m[query]
	full := p.m == nil || len(p.m) >= maxPrepared
	p.mu.Unlock()
	if ok || full {
		return st
	}
	// Prepared without the lock: preparing waits for a connection.
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.m[query]; ok || p.m == nil {
		// Another call prepared it first, or the store closed.
		_ = st.Close()
		return cur
	}
	p.m[query] = st
	return st
}

func (p *prepared) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.db.QueryContext(ctx, query, args...)
}

func (p *prepared) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := p.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// Close closes the statements; later queries run unprepared.
func (p *prepared) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, st := range p.m {
		errs = append(errs, st.Close())
	}
	p.m = nil
	return errors.Join(errs...)
}
