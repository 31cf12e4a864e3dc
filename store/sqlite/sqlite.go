// Package sqlite is Kloud's embedded store: every aggregate of store.Store
// in one SQLite file (<data-dir>/kloud.db, WAL) through modernc.org/sqlite,
// without cgo. Writes run in BEGIN IMMEDIATE transactions so concurrent
// writers, in this process or another, wait on busy_timeout instead of
// failing; secrets are sealed with store/secretbox before they reach the
// file.
package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
)

// FileName is the database file's name inside the data directory.
const FileName = "kloud.db"

// DefaultBusyTimeout is how long a write waits for another writer (in this
// process or another) before failing.
const DefaultBusyTimeout = 10 * time.Second

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is the SQLite backend of store.Store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // one connection, BEGIN IMMEDIATE: every write
	r *sql.DB // a pool of read connections (query_only)
	// hot runs the hottest reads on r as prepared statements.
	hot  *prepared
	box  *secretbox.Box
	log  *slog.Logger
	now  func() time.Time
	path string
	// maxGroups bounds a summary's groups (MaxSummaryGroups; tests lower it).
	maxGroups int
	// descs names the descs EachRatedPoint streams.
	descs *descInterner
	// encoders are blobEncoders for encodePeriod.
	encoders sync.Pool
}

var _ store.Store = (*Store)(nil)

type options struct {
	box         *secretbox.Box
	log         *slog.Logger
	now         func() time.Time
	busyTimeout time.Duration
	readConns   int
}

// Option changes how Open sets the store up.
type Option func(*options)

// WithBox makes the store seal secrets with b instead of the Box
// secretbox.Load finds for the data directory.
func WithBox(b *secretbox.Box) Option { return func(o *options) { o.box = b } }

// WithLogger sets the logger (slog.Default otherwise).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock that fills in CreatedAt, UpdatedAt and other
// times a caller leaves zero (time.Now otherwise).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithBusyTimeout sets how long a write waits for the database lock
// (DefaultBusyTimeout otherwise).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithReadConns sets the size of the read connection pool (at least 4, or
// twice the CPUs, otherwise).
func WithReadConns(n int) Option { return func(o *options) { o.readConns = n } }

// Open opens (creating when missing) <dataDir>/kloud.db, applies pending
// migrations and returns the store. Unless WithBox is given, the secret key
// comes from secretbox.Load(dataDir).
func Open(ctx context.Context, dataDir string, opts ...Option) (*Store, error) {
	o := options{busyTimeout: DefaultBusyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.readConns <= 0 {
		o.readConns = max(4, 2*runtime.NumCPU())
	}
	if o.busyTimeout <= 0 {
		return nil, fmt.Errorf("open store: busy timeout %v must be positive: %w", o.busyTimeout, store.ErrInvalid)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("open store: empty data dir: %w", store.ErrInvalid)
	}
	if strings.ContainsAny(dataDir, "?#") {
		return nil, fmt.Errorf("open store: data dir %q may not contain '?' or '#': %w", dataDir, store.ErrInvalid)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if o.box == nil {
		b, err := secretbox.Load(dataDir)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		o.box = b
	}

	path, err := filepath.Abs(filepath.Join(dataDir, FileName))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// SQLite gives its -wal and -shm files the database file's mode: make
	// that 0600 before it first opens it.
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	} else {
		f.Close()
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	drv := &sqlite.Driver{}
	busy := strconv.FormatInt(o.busyTimeout.Milliseconds(), 10)
	common := "_pragma=busy_timeout(" + busy + ")&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w := sql.OpenDB(connector{drv: drv, dsn: path + "?" + common + "&_pragma=journal_mode(WAL)&_txlock=immediate"})
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w, box: o.box, log: o.log, now: o.now, path: path, descs: newDescInterner()}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := s.checkKey(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Readers open after the writer has set WAL mode and migrated.
	r := sql.OpenDB(connector{drv: drv, dsn: path + "?" + common + "&_pragma=query_only(1)"})
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.r, s.hot = r, newPrepared(r)
	return s, nil
}

// Path is the database file's absolute path.
func (s *Store) Path() string { return s.path }

// Close closes the database. Calls in flight finish first.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.hot.Close(), s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// connector opens connections through this store's own Driver, so the
// functions registered on it reach only this store's connections.
type connector struct {
	drv *sqlite.Driver
	dsn string
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.drv.Open(c.dsn)
}

func (c connector) Driver() driver.Driver { return c.drv }

// ---- migrations ---------------------------------------------------------------

type migration struct {
	version int
	name    string
	sql     string
	sum     string
}

// migrationStep is the Go part of a migration, run after its SQL in the
// same transaction, for data SQL cannot convert; nil for most.
func migrationStep(version int) func(ctx context.Context, tx *sql.Tx) error {
	switch version {
	case 11:
		return moveRatedPoints
	}
	return nil
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("read migrations: %s is not named NNNN_name.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("read migrations: %s and %s share number %d", prev, name, v)
		}
		seen[v] = name
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: name, sql: string(b), sum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate applies, in one transaction, every migration not yet recorded in
// schema_migrations. A recorded migration whose file changed is an error:
// landed migrations are never edited.
func (s *Store) migrate(ctx context.Context) error {
	migs, err := loadMigrations()
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			checksum   TEXT NOT NULL,
			applied_at INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied := map[int]string{}
		rows, err := tx.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				rows.Close()
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			applied[v] = sum
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		known := map[int]bool{}
		for _, m := range migs {
			known[m.version] = true
			if sum, ok := applied[m.version]; ok {
				if sum != m.sum {
					return fmt.Errorf("apply migrations: %s changed after it was applied (landed migrations are never edited)", m.name)
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if step := migrationStep(m.version); step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("apply migration %s: %w", m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`,
				m.version, m.name, m.sum, s.now().UnixNano()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			s.log.Info("applied migration", "migration", m.name)
		}
		for v := range applied {
			if !known[v] {
				return fmt.Errorf("apply migrations: database has migration %d this binary does not know (a newer Kloud wrote it)", v)
			}
		}
		return nil
	})
}

// checkKey records the key check value at the first open and refuses an
// open with another key (secretbox.ErrKeyMismatch).
func (s *Store) checkKey(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		err := tx.QueryRowContext(ctx, `SELECT sealed FROM key_check WHERE id = 1`).Scan(&sealed)
		switch {
		case err == nil:
			return s.box.VerifyCheck(sealed)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read key check: %w", err)
		}
		// A database sealed before the check existed: a secret it holds
		// tells whether this is its key.
		var secret []byte
		err = tx.QueryRowContext(ctx, `SELECT data FROM credentials WHERE data IS NOT NULL LIMIT 1`).Scan(&secret)
		switch {
		case err == nil:
			if _, oerr := s.box.Open(secret); oerr != nil {
				return secretbox.ErrKeyMismatch
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read key check: %w", err)
		}
		sealed, err = s.box.SealCheck()
		if err != nil {
			return fmt.Errorf("record key check: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_check (id, sealed) VALUES (1, ?)`, sealed); err != nil {
			return fmt.Errorf("record key check: %w", mapErr(err))
		}
		return nil
	})
}

// ---- transactions -------------------------------------------------------------

// write runs fn in a BEGIN IMMEDIATE transaction on the write connection and
// commits when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

// read runs fn in a read transaction: one consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// ---- errors -------------------------------------------------------------------

// SQLite's primary result codes mapErr maps.
const (
	sqliteConstraint = 19 // SQLITE_CONSTRAINT
	sqliteCantOpen   = 14 // SQLITE_CANTOPEN: the file went away or is unreadable
)

// mapErr turns SQLite constraint violations into store.ErrConflict, and a
// database file that cannot be opened into store.ErrUnavailable.
func mapErr(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteConstraint:
			return fmt.Errorf("%s: %w", se.Error(), store.ErrConflict)
		case sqliteCantOpen:
			return fmt.Errorf("%s: %w", se.Error(), store.ErrUnavailable)
		}
	}
	return err
}

// noRows maps sql.ErrNoRows to ErrNotFound naming what was looked for.
func noRows(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.NotFoundf("%s", what)
	}
	return mapErr(err)
}

// mustAffect reports ErrNotFound when an update or delete touched no row.
func mustAffect(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.NotFoundf("%s", what)
	}
	return nil
}

// ---- ids and times ----------------------------------------------------------

func fromNull(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return store.FromNanos(n.Int64)
}

// nowOr returns t in UTC, or the store clock's now when t is zero.
func (s *Store) nowOr(t time.Time) time.Time { return store.NowOr(s.now, t) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ---- secrets ------------------------------------------------------------------

// seal encrypts a secret for a BLOB column; empty is NULL (a nil
// interface, not an empty blob).
func (s *Store) seal(what string, plain []byte) (any, error) {
	b, err := s.box.SealField(what, plain)
	if b == nil {
		return nil, err
	}
	return b, nil
}

// open decrypts a BLOB column; NULL is nil.
func (s *Store) open(what string, sealed []byte) ([]byte, error) {
	return s.box.OpenField(what, sealed)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// list runs a query and scans every row; it never returns a nil slice.
func list[T any](ctx context.Context, q queryer, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
