// Package mongo is Kloud's MongoDB store: every aggregate of store.Store in
// one MongoDB database, for deployments that run several `kloud serve`
// replicas on one database. It needs no multi-document transactions and no
// atomic read-modify-write either: every invariant is kept by unique-key
// inserts (one writer wins, the others get a duplicate key and re-read), by
// immutable records whose newest one is the truth, and by documents that
// only one writer ever changes. That is what lets the same code run on a
// standalone MongoDB, a replica set, and wire-compatible servers such as
// FerretDB 1.x, whose findAndModify, $inc and conditional updates are a
// read followed by an unconditional write (so two writers can both "win").
// Where the SQLite backend relies on a transaction, the code says how the
// same invariant is kept here.
//
// Times are int64 Unix nanoseconds (BSON dates hold only milliseconds);
// money and quantities are exact decimal strings, plus base-10^9 integer
// limbs that aggregation pipelines sum exactly with $sum; secrets are
// sealed with store/secretbox before they leave the process.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
)

// SchemaVersion is the version of the document layout this package writes.
// Open records it in the kloud_schema collection and refuses a database a
// newer release has migrated.
const SchemaVersion = 1

// DefaultTimeout bounds every call to the server (and server selection), so
// a lost connection is an error after at most this long, never a hang.
const DefaultTimeout = 15 * time.Second

// ErrUnavailable wraps every error that comes from not reaching the server
// (network loss, timeouts, no server selectable), so callers can tell an
// outage from a refused write.
var ErrUnavailable = errors.New("mongodb unavailable")

// Store is the MongoDB backend of store.Store. It is safe for concurrent use
// by any number of goroutines and processes.
type Store struct {
	client *mgo.Client
	db     *mgo.Database
	box    *secretbox.Box
	log    *slog.Logger
	now    func() time.Time
	name   string

	users, credentials, templates, stacks      *mgo.Collection
	machines, history, seen                    *mgo.Collection
	jobs, jobParts, events, eventHeads, leases *mgo.Collection
	stateVersions, modules, writers            *mgo.Collection
	hmServices, hmFields, hmGroups             *mgo.Collection
	hmMappings, hmThresholds                   *mgo.Collection
	periods, scopeHeads                        *mgo.Collection
	schema                                     *mgo.Collection
	tplVersions, plans, drifts, timings        *mgo.Collection
	audit                                      *mgo.Collection
}

var _ store.Store = (*Store)(nil)

type settings struct {
	box     *secretbox.Box
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
}

// Option changes how Open sets the store up.
type Option func(*settings)

// WithBox makes the store seal secrets with b instead of the Box
// secretbox.Load finds for the data directory. Replicas sharing one
// database must share one key (KLOUD_SECRET_KEY, or the same key file).
func WithBox(b *secretbox.Box) Option { return func(o *settings) { o.box = b } }

// WithLogger sets the logger (slog.Default otherwise).
func WithLogger(l *slog.Logger) Option { return func(o *settings) { o.log = l } }

// WithClock sets the clock that fills in times a caller leaves zero.
func WithClock(now func() time.Time) Option { return func(o *settings) { o.now = now } }

// WithTimeout bounds each call to the server (DefaultTimeout otherwise).
func WithTimeout(d time.Duration) Option { return func(o *settings) { o.timeout = d } }

// Open connects to the MongoDB server of uri (any MongoDB connection
// string; the database is the URI's path, e.g. mongodb://host:27017/kloud),
// creates the indexes, checks the schema version and returns the store.
// Unless WithBox is given, the secret key comes from
// secretbox.Load(dataDir).
func Open(ctx context.Context, uri, dataDir string, opts ...Option) (*Store, error) {
	o := settings{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.timeout <= 0 {
		return nil, store.Invalidf("open mongodb store: timeout %v must be positive", o.timeout)
	}
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return nil, store.Invalidf("open mongodb store: bad URI: %v", redactURI(err.Error()))
	}
	if cs.Database == "" {
		return nil, store.Invalidf("open mongodb store: the URI names no database (want mongodb://host:port/dbname)")
	}
	if o.box == nil {
		if dataDir == "" {
			return nil, store.Invalidf("open mongodb store: no data dir for the secret key (or give WithBox)")
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("open mongodb store: %w", err)
		}
		b, err := secretbox.Load(dataDir)
		if err != nil {
			return nil, fmt.Errorf("open mongodb store: %w", err)
		}
		o.box = b
	}
	copts := options.Client().ApplyURI(uri).
		SetTimeout(o.timeout).
		SetServerSelectionTimeout(o.timeout).
		SetConnectTimeout(o.timeout).
		// Every read goes to the primary and sees every acknowledged
		// write: the unique-insert protocols below re-read after losing.
		SetReadPreference(readpref.Primary()).
		SetRetryWrites(false) // a retried insert could report a duplicate of itself
	if !cs.WNumberSet && cs.WString == "" {
		copts.SetWriteConcern(writeconcern.Majority())
	}
	if cs.ReadConcernLevel == "" {
		copts.SetReadConcern(readconcern.Majority())
	}
	client, err := mgo.Connect(ctx, copts)
	if err != nil {
		return nil, fmt.Errorf("open mongodb store: %w", mapErr(err))
	}
	s := newStore(client, cs.Database, o)
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("open mongodb store %s: %w", cs.Database, mapErr(err))
	}
	if err := s.setup(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("open mongodb store %s: %w", cs.Database, err)
	}
	return s, nil
}

func newStore(client *mgo.Client, dbName string, o settings) *Store {
	db := client.Database(dbName)
	s := &Store{client: client, db: db, box: o.box, log: o.log, now: o.now, name: dbName}
	c := db.Collection
	s.users, s.credentials, s.templates, s.stacks = c("users"), c("credentials"), c("templates"), c("stacks")
	s.machines, s.history, s.seen = c("machines"), c("machine_history"), c("machine_seen")
	s.jobs, s.jobParts, s.events, s.eventHeads, s.leases = c("jobs"), c("job_parts"), c("events"), c("event_heads"), c("leases")
	s.stateVersions, s.modules, s.writers = c("state_versions"), c("rating_modules"), c("writer_states")
	s.hmServices, s.hmFields, s.hmGroups = c("hashmap_services"), c("hashmap_fields"), c("hashmap_groups")
	s.hmMappings, s.hmThresholds = c("hashmap_mappings"), c("hashmap_thresholds")
	s.periods, s.scopeHeads = c("rated_periods"), c("scope_heads")
	s.schema = c("kloud_schema")
	s.tplVersions, s.plans, s.drifts, s.timings = c("template_versions"), c("stack_plans"), c("stack_drift"), c("job_timings")
	s.audit = c("audit")
	return s
}

// Database is the name of the database the store uses.
func (s *Store) Database() string { return s.name }

// Close disconnects from the server. Calls in flight end with an error.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("close mongodb store: %w", mapErr(err))
	}
	return nil
}

// ---- schema -------------------------------------------------------------------

type index struct {
	coll   *mgo.Collection
	name   string
	keys   bson.D
	unique bool
}

// indexes are every index the store's queries and invariants need. Unique
// indexes are full (not partial or sparse: FerretDB 1.x supports neither),
// so an optional unique value is stored as a placeholder that cannot
// collide when it is empty.
func (s *Store) indexes() []index {
	return []index{
		{s.users, "name_unique", bson.D{{Key: "name", Value: 1}}, true},
		{s.users, "token_unique", bson.D{{Key: "token_hash", Value: 1}}, true},
		{s.users, "created", bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.credentials, "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.templates, "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.stacks, "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.stacks, "template", bson.D{{Key: "template_id", Value: 1}}, false},
		{s.stacks, "credential", bson.D{{Key: "credential_id", Value: 1}, {Key: "status", Value: 1}}, false},
		{s.machines, "agent_token_unique", bson.D{{Key: "agent_token_hash", Value: 1}}, true},
		{s.machines, "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.machines, "stack", bson.D{{Key: "stack_id", Value: 1}, {Key: "_id", Value: 1}}, false},
		{s.history, "machine", bson.D{{Key: "m", Value: 1}, {Key: "v", Value: 1}}, true},
		{s.history, "head", bson.D{{Key: "head", Value: 1}, {Key: "o", Value: 1}}, false},
		{s.history, "owner_at", bson.D{{Key: "o", Value: 1}, {Key: "at", Value: 1}}, false},
		{s.history, "at", bson.D{{Key: "at", Value: 1}}, false},
		{s.history, "next", bson.D{{Key: "next_at", Value: 1}}, false},
		{s.seen, "owner", bson.D{{Key: "o", Value: 1}}, false},
		{s.jobs, "target_seq_unique", bson.D{{Key: "target", Value: 1}, {Key: "tseq", Value: 1}}, true},
		{s.jobs, "status_created", bson.D{{Key: "st", Value: 1}, {Key: "created_at", Value: 1}, {Key: "ord", Value: 1}}, false},
		{s.jobs, "created", bson.D{{Key: "created_at", Value: 1}, {Key: "ord", Value: 1}}, false},
		{s.jobParts, "job", bson.D{{Key: "j", Value: 1}}, false},
		{s.events, "job_last", bson.D{{Key: "j", Value: 1}, {Key: "last", Value: 1}}, false},
		{s.events, "job_first_unique", bson.D{{Key: "j", Value: 1}, {Key: "first", Value: 1}}, true},
		{s.leases, "name_epoch_unique", bson.D{{Key: "name", Value: 1}, {Key: "epoch", Value: 1}}, true},
		{s.stateVersions, "stack_serial_unique", bson.D{{Key: "stack_id", Value: 1}, {Key: "serial", Value: 1}}, true},
		{s.stateVersions, "stack_prev_unique", bson.D{{Key: "stack_id", Value: 1}, {Key: "prev", Value: 1}}, true},
		{s.hmServices, "name_unique", bson.D{{Key: "name", Value: 1}}, true},
		{s.hmFields, "service_name_unique", bson.D{{Key: "service_id", Value: 1}, {Key: "name", Value: 1}}, true},
		{s.hmGroups, "name_unique", bson.D{{Key: "name", Value: 1}}, true},
		{s.hmMappings, "rule_unique", bson.D{{Key: "service_id", Value: 1}, {Key: "field_id", Value: 1}, {Key: "value", Value: 1}, {Key: "group_id", Value: 1}}, true},
		{s.hmMappings, "group", bson.D{{Key: "group_id", Value: 1}}, false},
		{s.hmThresholds, "rule_unique", bson.D{{Key: "service_id", Value: 1}, {Key: "field_id", Value: 1}, {Key: "level_key", Value: 1}, {Key: "group_id", Value: 1}}, true},
		{s.hmThresholds, "group", bson.D{{Key: "group_id", Value: 1}}, false},
		{s.periods, "scope_begin_unique", bson.D{{Key: "scope", Value: 1}, {Key: "begin", Value: 1}}, true},
		{s.periods, "scope_window", bson.D{{Key: "scope", Value: 1}, {Key: "max_b", Value: 1}}, false},
		{s.periods, "window", bson.D{{Key: "max_b", Value: 1}}, false},
		{s.tplVersions, "template_version_unique", bson.D{{Key: "template_id", Value: 1}, {Key: "version", Value: 1}}, true},
		{s.plans, "stack", bson.D{{Key: "stack_id", Value: 1}}, false},
		{s.jobs, "stack_created", bson.D{{Key: "stack_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.db.Collection(sharesColl), "user", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.db.Collection(sharesColl), "machine", bson.D{{Key: "machine_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.db.Collection(sessionsColl), "machine", bson.D{{Key: "machine_id", Value: 1}, {Key: "opened_at", Value: 1}}, false},
		{s.audit, "at", bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{s.audit, "actor", bson.D{{Key: "actor", Value: 1}, {Key: "at", Value: -1}}, false},
		{s.audit, "owner", bson.D{{Key: "owner_id", Value: 1}, {Key: "at", Value: -1}}, false},
		{s.audit, "target", bson.D{{Key: "target", Value: 1}, {Key: "at", Value: -1}}, false},
	}
}

type schemaDoc struct {
	ID      string `bson:"_id"`
	Version int    `bson:"version"`
	Created int64  `bson:"created_at"`
}

// setup creates the indexes (idempotently, as MongoDB does for an existing
// index of the same spec) and records or checks the schema version.
func (s *Store) setup(ctx context.Context) error {
	for _, ix := range append(s.indexes(), s.costIndexes()...) {
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		if _, err := ix.coll.Indexes().CreateOne(ctx, mgo.IndexModel{Keys: ix.keys, Options: opts}); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll.Name(), ix.name, mapErr(err))
		}
	}
	_, err := s.schema.InsertOne(ctx, schemaDoc{ID: "schema", Version: SchemaVersion, Created: s.now().UnixNano()})
	if err != nil && !mgo.IsDuplicateKeyError(err) {
		return fmt.Errorf("record schema version: %w", mapErr(err))
	}
	var doc schemaDoc
	if err := s.schema.FindOne(ctx, bson.D{{Key: "_id", Value: "schema"}}).Decode(&doc); err != nil {
		return fmt.Errorf("read schema version: %w", mapErr(err))
	}
	if doc.Version > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this Kloud's (%d): a newer release migrated it", doc.Version, SchemaVersion)
	}
	if doc.Version < SchemaVersion {
		// No migration exists yet: version 1 is the first layout.
		return fmt.Errorf("database schema version %d has no migration to %d", doc.Version, SchemaVersion)
	}
	return s.checkKey(ctx)
}

// keyCheckDoc is the key check value sealed at the database's first open.
type keyCheckDoc struct {
	ID     string `bson:"_id"`
	Sealed []byte `bson:"sealed"`
}

// checkKey records the key check value at the first open and refuses an
// open with another key (secretbox.ErrKeyMismatch). The insert is keyed
// by _id, so replicas opening a fresh database at once agree on one value:
// the losers read the winner's and check their key against it.
func (s *Store) checkKey(ctx context.Context) error {
	sealed, err := s.box.SealCheck()
	if err != nil {
		return fmt.Errorf("record key check: %w", err)
	}
	_, err = s.schema.InsertOne(ctx, keyCheckDoc{ID: "key_check", Sealed: sealed})
	if err == nil {
		return nil
	}
	if !mgo.IsDuplicateKeyError(err) && !isUniqueViolation(err) {
		return fmt.Errorf("record key check: %w", mapErr(err))
	}
	var doc keyCheckDoc
	if err := s.schema.FindOne(ctx, bson.D{{Key: "_id", Value: "key_check"}}).Decode(&doc); err != nil {
		return fmt.Errorf("read key check: %w", mapErr(err))
	}
	return s.box.VerifyCheck(doc.Sealed)
}

// ---- errors -------------------------------------------------------------------

// mapErr turns a duplicate key into store.ErrConflict, no document into
// store.ErrNotFound, and every way of not reaching the server into
// ErrUnavailable; other errors pass unchanged.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case mgo.IsDuplicateKeyError(err), isUniqueViolation(err):
		return fmt.Errorf("%s: %w", err.Error(), store.ErrConflict)
	case errors.Is(err, mgo.ErrNoDocuments):
		return store.ErrNotFound
	case mgo.IsNetworkError(err), mgo.IsTimeout(err), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, mgo.ErrClientDisconnected), isSelectionError(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// isUniqueViolation recognizes FerretDB 1.x's answer to an update that
// breaks a unique index: an InternalError carrying SQLite's "UNIQUE
// constraint failed" rather than a duplicate key error (inserts get the
// proper code 11000).
func isUniqueViolation(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func isSelectionError(err error) bool {
	var sel topology.ServerSelectionError
	return errors.As(err, &sel) || errors.Is(err, topology.ErrTopologyClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func redactURI(msg string) string {
	if i := strings.Index(msg, "@"); i >= 0 {
		if j := strings.Index(msg, "://"); j >= 0 && j < i {
			return msg[:j+3] + "…" + msg[i:]
		}
	}
	return msg
}

// one reads a single document into v; no document is ErrNotFound naming
// what.
func one(ctx context.Context, c *mgo.Collection, filter any, v any, what string, opts ...*options.FindOneOptions) error {
	err := c.FindOne(ctx, filter, opts...).Decode(v)
	if errors.Is(err, mgo.ErrNoDocuments) {
		return store.NotFoundf("%s", what)
	}
	return mapErr(err)
}

// all runs a find and decodes every document; it never returns nil.
func allOf[T any](ctx context.Context, c *mgo.Collection, filter any, opts ...*options.FindOptions) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts...)
	if err != nil {
		return nil, mapErr(err)
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

func sortBy(keys ...string) bson.D {
	d := make(bson.D, 0, len(keys))
	for _, k := range keys {
		dir := 1
		if strings.HasPrefix(k, "-") {
			k, dir = k[1:], -1
		}
		d = append(d, bson.E{Key: k, Value: dir})
	}
	return d
}

// ---- ids and times ----------------------------------------------------------

// ord is a creation-order key: ObjectIDs grow within a process and by the
// second across processes (SQLite lists in rowid order).
func ord() primitive.ObjectID { return primitive.NewObjectID() }

// fromOpt is fromNanos for an optional time: 0 is the zero time.
func fromOpt(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return store.FromNanos(n)
}

// nowOr returns t in UTC, or the store clock's now when t is zero.
func (s *Store) nowOr(t time.Time) time.Time { return store.NowOr(s.now, t) }

// ---- secrets ------------------------------------------------------------------

func (s *Store) seal(what string, plain []byte) ([]byte, error) {
	return s.box.SealField(what, plain)
}

func (s *Store) open(what string, sealed []byte) ([]byte, error) {
	return s.box.OpenField(what, sealed)
}

// emptyKey is the placeholder an empty optional unique value (a token
// hash) is stored as: unique per document, and never a real hash (those are
// hex).
func emptyKey(id string) string { return "\x00none:" + id }

func fromKey(v string) string {
	if strings.HasPrefix(v, "\x00") {
		return ""
	}
	return v
}
