package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/kloud/audit"
	"github.com/kloud/kloud/store"
)

type auditDoc struct {
	ID        string `bson:"_id"`
	At        int64  `bson:"at"`
	Actor     string `bson:"actor"`
	Action    string `bson:"action"`
	Target    string `bson:"target"`
	OwnerID   string `bson:"owner_id"`
	Outcome   string `bson:"outcome"`
	RequestID string `bson:"request_id"`
	Detail    string `bson:"detail"`
}

// AppendAudit records an audit entry.
func (s *Store) AppendAudit(ctx context.Context, e *audit.Entry) error {
	w, err := store.CheckAuditEntry(e, s.now())
	if err != nil {
		return err
	}
	d := auditDoc{ID: w.ID, At: w.Created, Actor: e.Actor, Action: e.Action, Target: e.Target,
		OwnerID: e.OwnerID, Outcome: e.Outcome, RequestID: e.RequestID, Detail: e.Detail}
	if _, err := s.audit.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("append audit entry: %w", mapErr(err))
	}
	e.ID, e.At = w.ID, w.CreatedAt
	return nil
}

// ListAudit returns the entries q selects, newest first.
func (s *Store) ListAudit(ctx context.Context, q audit.Query) ([]*audit.Entry, error) {
	filter := bson.D{}
	if q.Actor != "" {
		filter = append(filter, bson.E{Key: "actor", Value: q.Actor})
	}
	if q.Target != "" {
		filter = append(filter, bson.E{Key: "target", Value: q.Target})
	}
	if !q.Since.IsZero() {
		since, err := store.UnixNanos("since", q.Since)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		filter = append(filter, bson.E{Key: "at", Value: bson.D{{Key: "$gte", Value: since}}})
	}
	var and bson.A
	if q.VisibleTo != "" {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "actor", Value: q.VisibleTo}},
			bson.D{{Key: "owner_id", Value: q.VisibleTo}},
		}}})
	}
	if q.Before != "" {
		var cur auditDoc
		err := s.audit.FindOne(ctx, byID(q.Before)).Decode(&cur)
		if errors.Is(err, mgo.ErrNoDocuments) {
			return nil, store.Invalidf("list audit: the cursor names no entry")
		}
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", mapErr(err))
		}
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cur.At}}}},
			bson.D{{Key: "at", Value: cur.At}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: cur.ID}}}},
		}}})
	}
	if len(and) > 0 {
		filter = append(filter, bson.E{Key: "$and", Value: and})
	}
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(store.AuditLimit(q)))
	docs, err := allOf[auditDoc](ctx, s.audit, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out := make([]*audit.Entry, 0, len(docs))
	for _, d := range docs {
		out = append(out, &audit.Entry{ID: d.ID, At: store.FromNanos(d.At), Actor: d.Actor, Action: d.Action, Target: d.Target,
			OwnerID: d.OwnerID, Outcome: d.Outcome, RequestID: d.RequestID, Detail: d.Detail})
	}
	return out, nil
}

// PruneAudit deletes the entries older than before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	b, err := store.UnixNanos("before", before)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	res, err := s.audit.DeleteMany(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: b}}}})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", mapErr(err))
	}
	return res.DeletedCount, nil
}
