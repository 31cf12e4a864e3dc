package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
)

// Ready reports whether the server answers and the database's schema
// version is this package's.
func (s *Store) Ready(ctx context.Context) error {
	var doc schemaDoc
	if err := s.schema.FindOne(ctx, bson.D{{Key: "_id", Value: "schema"}}).Decode(&doc); err != nil {
		return fmt.Errorf("read schema version: %w", mapErr(err))
	}
	if doc.Version != SchemaVersion {
		return fmt.Errorf("schema not current: database at %d, this binary at %d", doc.Version, SchemaVersion)
	}
	return nil
}
