package mongo

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/store"
)

// ---- Terraform state versions -------------------------------------------------
//
// Each version records the serial of the version it follows ("prev", -1 for
// the first), and (stack_id, prev) is unique: two writers that read the
// same latest version cannot both append after it, so serials strictly
// increase in the order they are stored (SQLite checks max(serial) and
// inserts in one transaction).

type stateVersionDoc struct {
	ID        string `bson:"_id"`
	StackID   string `bson:"stack_id"`
	Serial    int64  `bson:"serial"`
	Prev      int64  `bson:"prev"`
	Lineage   string `bson:"lineage"`
	JobID     string `bson:"job_id"`
	State     []byte `bson:"state,omitempty"` // sealed
	CreatedAt int64  `bson:"created_at"`
}

// PutStateVersion stores a state version, State sealed; a serial not
// greater than the stack's latest is ErrStaleSerial.
func (s *Store) PutStateVersion(ctx context.Context, v *store.StateVersion) error {
	w, err := store.CheckStateVersion(v, s.now())
	if err != nil {
		return err
	}
	created, cn := w.CreatedAt, w.Created
	state, err := s.seal("terraform state", v.State)
	if err != nil {
		return fmt.Errorf("put state version of %s: %w", v.StackID, err)
	}
	for range maxRetries {
		prev := int64(-1)
		var latest stateVersionDoc
		switch err := one(ctx, s.stateVersions, bson.D{{Key: "stack_id", Value: v.StackID}}, &latest, "state of "+v.StackID,
			options.FindOne().SetSort(sortBy("-serial")).SetProjection(bson.D{{Key: "serial", Value: 1}})); {
		case err == nil:
			if v.Serial <= latest.Serial {
				return fmt.Errorf("put state version of %s: serial %d, latest is %d: %w", v.StackID, v.Serial, latest.Serial, store.ErrStaleSerial)
			}
			prev = latest.Serial
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("put state version of %s: %w", v.StackID, err)
		}
		d := stateVersionDoc{ID: fmt.Sprintf("%s/%020d", v.StackID, v.Serial), StackID: v.StackID, Serial: v.Serial, Prev: prev,
			Lineage: v.Lineage, JobID: v.JobID, State: state, CreatedAt: cn}
		_, err := s.stateVersions.InsertOne(ctx, d)
		if err == nil {
			v.CreatedAt = created
			return nil
		}
		if !mgo.IsDuplicateKeyError(err) {
			return fmt.Errorf("put state version of %s: %w", v.StackID, mapErr(err))
		}
		// Another version was stored after the one we read: compare again.
	}
	return fmt.Errorf("put state version of %s: too contended: %w", v.StackID, store.ErrConflict)
}

// LatestStateVersion returns the stack's version with the highest serial,
// State opened.
func (s *Store) LatestStateVersion(ctx context.Context, stackID string) (*store.StateVersion, error) {
	if err := store.CheckKey("latest state version", "stack id", stackID); err != nil {
		return nil, err
	}
	var d stateVersionDoc
	if err := one(ctx, s.stateVersions, bson.D{{Key: "stack_id", Value: stackID}}, &d, "state of "+stackID,
		options.FindOne().SetSort(sortBy("-serial"))); err != nil {
		return nil, fmt.Errorf("latest state version: %w", err)
	}
	state, err := s.open("terraform state of "+stackID, d.State)
	if err != nil {
		return nil, fmt.Errorf("latest state version: %w", err)
	}
	return &store.StateVersion{StackID: d.StackID, Serial: d.Serial, Lineage: d.Lineage, JobID: d.JobID, State: state, CreatedAt: store.FromNanos(d.CreatedAt)}, nil
}

// ListStateVersions returns a stack's versions oldest first, without State.
func (s *Store) ListStateVersions(ctx context.Context, stackID string) ([]*store.StateVersion, error) {
	if err := store.CheckKey("list state versions", "stack id", stackID); err != nil {
		return nil, err
	}
	docs, err := allOf[stateVersionDoc](ctx, s.stateVersions, bson.D{{Key: "stack_id", Value: stackID}},
		options.Find().SetSort(sortBy("serial")).SetProjection(bson.D{{Key: "state", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("list state versions of %s: %w", stackID, err)
	}
	out := make([]*store.StateVersion, len(docs))
	for i, d := range docs {
		out[i] = &store.StateVersion{StackID: d.StackID, Serial: d.Serial, Lineage: d.Lineage, JobID: d.JobID, CreatedAt: store.FromNanos(d.CreatedAt)}
	}
	return out, nil
}

// ---- rating modules -------------------------------------------------------------

type moduleDoc struct {
	Name     string `bson:"_id"`
	Enabled  bool   `bson:"enabled"`
	Priority int    `bson:"priority"`
}

// ListRatingModules returns every stored module setting, highest priority
// first (then by name).
func (s *Store) ListRatingModules(ctx context.Context) ([]*store.RatingModule, error) {
	docs, err := allOf[moduleDoc](ctx, s.modules, bson.D{}, options.Find().SetSort(sortBy("-priority", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list rating modules: %w", err)
	}
	out := make([]*store.RatingModule, len(docs))
	for i, d := range docs {
		out[i] = &store.RatingModule{Name: d.Name, Enabled: d.Enabled, Priority: d.Priority}
	}
	return out, nil
}

// GetRatingModule returns one module's setting.
func (s *Store) GetRatingModule(ctx context.Context, name string) (*store.RatingModule, error) {
	if err := store.CheckKey("get rating module", "name", name); err != nil {
		return nil, err
	}
	var d moduleDoc
	if err := one(ctx, s.modules, byID(name), &d, "rating module "+name); err != nil {
		return nil, fmt.Errorf("get rating module: %w", err)
	}
	return &store.RatingModule{Name: d.Name, Enabled: d.Enabled, Priority: d.Priority}, nil
}

// upsert replaces the document with doc's _id, creating it when missing. Of
// two concurrent creations one may get a duplicate key; it then replaces
// the other's.
func upsert(ctx context.Context, c *mgo.Collection, id string, doc any) error {
	_, err := c.ReplaceOne(ctx, byID(id), doc, options.Replace().SetUpsert(true))
	if err != nil && mgo.IsDuplicateKeyError(err) {
		_, err = c.ReplaceOne(ctx, byID(id), doc)
	}
	return mapErr(err)
}

// PutRatingModule creates or replaces a module's setting.
func (s *Store) PutRatingModule(ctx context.Context, m *store.RatingModule) error {
	if err := store.CheckRatingModule(m); err != nil {
		return err
	}
	if err := upsert(ctx, s.modules, m.Name, moduleDoc{Name: m.Name, Enabled: m.Enabled, Priority: m.Priority}); err != nil {
		return fmt.Errorf("put rating module %s: %w", m.Name, err)
	}
	return nil
}

// ---- writer states --------------------------------------------------------------

type writerDoc struct {
	ID          string `bson:"_id"`
	Scope       string `bson:"scope"`
	Writer      string `bson:"writer"`
	LastWritten int64  `bson:"last_written"`
	Total       string `bson:"total"`
}

func writerID(scope, writer string) string { return fmt.Sprintf("%d:%s/%s", len(scope), scope, writer) }

// GetWriterState returns a writer's progress for a scope.
func (s *Store) GetWriterState(ctx context.Context, scope, writer string) (*store.WriterState, error) {
	if err := store.CheckWriterKey("get writer state", scope, writer); err != nil {
		return nil, err
	}
	var d writerDoc
	if err := one(ctx, s.writers, byID(writerID(scope, writer)), &d, "writer "+writer+" state of scope "+scope); err != nil {
		return nil, fmt.Errorf("get writer state: %w", err)
	}
	total, err := decimal.NewFromString(d.Total)
	if err != nil {
		return nil, fmt.Errorf("get writer state: decode total %q: %w", d.Total, err)
	}
	return &store.WriterState{Scope: d.Scope, Writer: d.Writer, LastWritten: fromOpt(d.LastWritten), Total: total}, nil
}

// PutWriterState creates or replaces a writer's progress for a scope (its
// one writer is the write orchestrator of that scope).
func (s *Store) PutWriterState(ctx context.Context, w *store.WriterState) error {
	last, err := store.CheckWriterState(w)
	if err != nil {
		return err
	}
	id := writerID(w.Scope, w.Writer)
	if err := upsert(ctx, s.writers, id, writerDoc{ID: id, Scope: w.Scope, Writer: w.Writer, LastWritten: last, Total: w.Total.String()}); err != nil {
		return fmt.Errorf("put writer %s state of %s: %w", w.Writer, w.Scope, err)
	}
	return nil
}
