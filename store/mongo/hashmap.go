package mongo

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// The hashmap rules. Uniqueness (service names, field names within a
// service, group names, a mapping's or threshold's key within its group)
// is kept by unique indexes over fields that are always present ("" for
// none). Deleting a service or field deletes it first and its rules after;
// a rule whose service or field is gone, or whose group is gone, is left
// out of HashmapRules (or counted ungrouped), so pricing never sees a
// half-done cascade (SQLite cascades inside the delete's transaction).

type hmServiceDoc struct {
	ID   string             `bson:"_id"`
	Name string             `bson:"name"`
	Ord  primitive.ObjectID `bson:"ord"`
}

type hmFieldDoc struct {
	ID        string             `bson:"_id"`
	ServiceID string             `bson:"service_id"`
	Name      string             `bson:"name"`
	Ord       primitive.ObjectID `bson:"ord"`
}

type hmGroupDoc struct {
	ID   string             `bson:"_id"`
	Name string             `bson:"name"`
	Ord  primitive.ObjectID `bson:"ord"`
}

type hmMappingDoc struct {
	ID        string             `bson:"_id"`
	ServiceID string             `bson:"service_id"`
	FieldID   string             `bson:"field_id"`
	GroupID   string             `bson:"group_id"`
	Value     string             `bson:"value"`
	Type      string             `bson:"type"`
	Cost      string             `bson:"cost"`
	Ord       primitive.ObjectID `bson:"ord"`
}

type hmThresholdDoc struct {
	ID        string             `bson:"_id"`
	ServiceID string             `bson:"service_id"`
	FieldID   string             `bson:"field_id"`
	GroupID   string             `bson:"group_id"`
	Level     string             `bson:"level"`
	LevelKey  string             `bson:"level_key"` // the level normalized: 50.0 and 50 collide
	Type      string             `bson:"type"`
	Cost      string             `bson:"cost"`
	Ord       primitive.ObjectID `bson:"ord"`
}

func byOrd() *options.FindOptions { return options.Find().SetSort(sortBy("ord")) }

// ---- services, fields, groups -----------------------------------------------

// CreateHashmapService stores a service; names are unique.
func (s *Store) CreateHashmapService(ctx context.Context, svc *hashmap.Service) error {
	id, err := store.CheckNewService(svc)
	if err != nil {
		return err
	}
	if _, err := s.hmServices.InsertOne(ctx, hmServiceDoc{ID: id, Name: svc.Name, Ord: ord()}); err != nil {
		return fmt.Errorf("create hashmap service %s: %w", svc.Name, mapErr(err))
	}
	svc.ID = id
	return nil
}

// GetHashmapService returns a service.
func (s *Store) GetHashmapService(ctx context.Context, id string) (*hashmap.Service, error) {
	if err := store.CheckKey("get hashmap service", "id", id); err != nil {
		return nil, err
	}
	var d hmServiceDoc
	if err := one(ctx, s.hmServices, byID(id), &d, "hashmap service "+id); err != nil {
		return nil, fmt.Errorf("get hashmap service: %w", err)
	}
	return &hashmap.Service{ID: d.ID, Name: d.Name}, nil
}

// ListHashmapServices returns every service in creation order.
func (s *Store) ListHashmapServices(ctx context.Context) ([]*hashmap.Service, error) {
	docs, err := allOf[hmServiceDoc](ctx, s.hmServices, bson.D{}, byOrd())
	if err != nil {
		return nil, fmt.Errorf("list hashmap services: %w", err)
	}
	out := make([]*hashmap.Service, len(docs))
	for i, d := range docs {
		out[i] = &hashmap.Service{ID: d.ID, Name: d.Name}
	}
	return out, nil
}

// deleteOne deletes the document with id; none is ErrNotFound.
func deleteOne(ctx context.Context, c *mgo.Collection, what, id string) error {
	if err := store.CheckKey("delete "+what, "id", id); err != nil {
		return err
	}
	res, err := c.DeleteOne(ctx, byID(id))
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, id, mapErr(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete %s %s: %w", what, id, store.NotFoundf("%s %s", what, id))
	}
	return nil
}

// DeleteHashmapService deletes a service, then its fields, mappings and
// thresholds.
func (s *Store) DeleteHashmapService(ctx context.Context, id string) error {
	if err := deleteOne(ctx, s.hmServices, "hashmap service", id); err != nil {
		return err
	}
	fields, err := allOf[hmFieldDoc](ctx, s.hmFields, bson.D{{Key: "service_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete hashmap service %s: rules: %w", id, err)
	}
	fieldIDs := make([]string, len(fields))
	for i, f := range fields {
		fieldIDs[i] = f.ID
	}
	rules := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "service_id", Value: id}},
		bson.D{{Key: "field_id", Value: bson.D{{Key: "$in", Value: fieldIDs}}}},
	}}}
	if len(fieldIDs) == 0 {
		rules = bson.D{{Key: "service_id", Value: id}}
	}
	for _, c := range []*mgo.Collection{s.hmMappings, s.hmThresholds} {
		if _, err := c.DeleteMany(ctx, rules); err != nil {
			return fmt.Errorf("delete hashmap service %s: rules: %w", id, mapErr(err))
		}
	}
	if _, err := s.hmFields.DeleteMany(ctx, bson.D{{Key: "service_id", Value: id}}); err != nil {
		return fmt.Errorf("delete hashmap service %s: fields: %w", id, mapErr(err))
	}
	return nil
}

func (s *Store) exists(ctx context.Context, c *mgo.Collection, what, id string) error {
	var d struct {
		ID string `bson:"_id"`
	}
	return one(ctx, c, byID(id), &d, what+" "+id, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
}

// CreateHashmapField stores a field of an existing service; names are
// unique within the service.
func (s *Store) CreateHashmapField(ctx context.Context, f *hashmap.Field) error {
	id, err := store.CheckNewField(f)
	if err != nil {
		return err
	}
	if err := s.exists(ctx, s.hmServices, "service", f.ServiceID); err != nil {
		return fmt.Errorf("create hashmap field %s: %w", f.Name, err)
	}
	if _, err := s.hmFields.InsertOne(ctx, hmFieldDoc{ID: id, ServiceID: f.ServiceID, Name: f.Name, Ord: ord()}); err != nil {
		return fmt.Errorf("create hashmap field %s: %w", f.Name, mapErr(err))
	}
	f.ID = id
	return nil
}

// GetHashmapField returns a field.
func (s *Store) GetHashmapField(ctx context.Context, id string) (*hashmap.Field, error) {
	if err := store.CheckKey("get hashmap field", "id", id); err != nil {
		return nil, err
	}
	var d hmFieldDoc
	if err := one(ctx, s.hmFields, byID(id), &d, "hashmap field "+id); err != nil {
		return nil, fmt.Errorf("get hashmap field: %w", err)
	}
	return &hashmap.Field{ID: d.ID, ServiceID: d.ServiceID, Name: d.Name}, nil
}

// ListHashmapFields lists a service's fields (every field when serviceID is
// empty) in creation order; an unknown service is ErrNotFound.
func (s *Store) ListHashmapFields(ctx context.Context, serviceID string) ([]*hashmap.Field, error) {
	filter := bson.D{}
	if serviceID != "" {
		if err := s.exists(ctx, s.hmServices, "hashmap service", serviceID); err != nil {
			return nil, fmt.Errorf("list hashmap fields: %w", err)
		}
		filter = bson.D{{Key: "service_id", Value: serviceID}}
	}
	docs, err := allOf[hmFieldDoc](ctx, s.hmFields, filter, byOrd())
	if err != nil {
		return nil, fmt.Errorf("list hashmap fields: %w", err)
	}
	out := make([]*hashmap.Field, len(docs))
	for i, d := range docs {
		out[i] = &hashmap.Field{ID: d.ID, ServiceID: d.ServiceID, Name: d.Name}
	}
	return out, nil
}

// DeleteHashmapField deletes a field, then its mappings and thresholds.
func (s *Store) DeleteHashmapField(ctx context.Context, id string) error {
	if err := deleteOne(ctx, s.hmFields, "hashmap field", id); err != nil {
		return err
	}
	for _, c := range []*mgo.Collection{s.hmMappings, s.hmThresholds} {
		if _, err := c.DeleteMany(ctx, bson.D{{Key: "field_id", Value: id}}); err != nil {
			return fmt.Errorf("delete hashmap field %s: rules: %w", id, mapErr(err))
		}
	}
	return nil
}

// CreateHashmapGroup stores a group; names are unique.
func (s *Store) CreateHashmapGroup(ctx context.Context, g *hashmap.Group) error {
	id, err := store.CheckNewGroup(g)
	if err != nil {
		return err
	}
	if _, err := s.hmGroups.InsertOne(ctx, hmGroupDoc{ID: id, Name: g.Name, Ord: ord()}); err != nil {
		return fmt.Errorf("create hashmap group %s: %w", g.Name, mapErr(err))
	}
	g.ID = id
	return nil
}

// GetHashmapGroup returns a group.
func (s *Store) GetHashmapGroup(ctx context.Context, id string) (*hashmap.Group, error) {
	if err := store.CheckKey("get hashmap group", "id", id); err != nil {
		return nil, err
	}
	var d hmGroupDoc
	if err := one(ctx, s.hmGroups, byID(id), &d, "hashmap group "+id); err != nil {
		return nil, fmt.Errorf("get hashmap group: %w", err)
	}
	return &hashmap.Group{ID: d.ID, Name: d.Name}, nil
}

// ListHashmapGroups returns every group in creation order.
func (s *Store) ListHashmapGroups(ctx context.Context) ([]*hashmap.Group, error) {
	docs, err := allOf[hmGroupDoc](ctx, s.hmGroups, bson.D{}, byOrd())
	if err != nil {
		return nil, fmt.Errorf("list hashmap groups: %w", err)
	}
	out := make([]*hashmap.Group, len(docs))
	for i, d := range docs {
		out[i] = &hashmap.Group{ID: d.ID, Name: d.Name}
	}
	return out, nil
}

// DeleteHashmapGroup deletes a group; its mappings and thresholds stay,
// ungrouped. When ungrouping would make two rules of the default group
// collide, nothing is deleted and the error is ErrConflict.
func (s *Store) DeleteHashmapGroup(ctx context.Context, id string) error {
	if err := store.CheckKey("delete hashmap group", "id", id); err != nil {
		return err
	}
	if err := s.exists(ctx, s.hmGroups, "hashmap group", id); err != nil {
		return fmt.Errorf("delete hashmap group %s: %w", id, err)
	}
	inGroup := bson.D{{Key: "group_id", Value: id}}
	maps, err := allOf[hmMappingDoc](ctx, s.hmMappings, inGroup)
	if err != nil {
		return fmt.Errorf("delete hashmap group %s: %w", id, err)
	}
	for _, m := range maps {
		var twin hmMappingDoc
		err := one(ctx, s.hmMappings, bson.D{{Key: "service_id", Value: m.ServiceID}, {Key: "field_id", Value: m.FieldID},
			{Key: "value", Value: m.Value}, {Key: "group_id", Value: ""}}, &twin, "mapping")
		if err == nil {
			return fmt.Errorf("delete hashmap group %s: ungrouped mapping %s would collide with %s: %w", id, m.ID, twin.ID, store.ErrConflict)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete hashmap group %s: %w", id, err)
		}
	}
	ths, err := allOf[hmThresholdDoc](ctx, s.hmThresholds, inGroup)
	if err != nil {
		return fmt.Errorf("delete hashmap group %s: %w", id, err)
	}
	for _, t := range ths {
		var twin hmThresholdDoc
		err := one(ctx, s.hmThresholds, bson.D{{Key: "service_id", Value: t.ServiceID}, {Key: "field_id", Value: t.FieldID},
			{Key: "level_key", Value: t.LevelKey}, {Key: "group_id", Value: ""}}, &twin, "threshold")
		if err == nil {
			return fmt.Errorf("delete hashmap group %s: ungrouped threshold %s would collide with %s: %w", id, t.ID, twin.ID, store.ErrConflict)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete hashmap group %s: %w", id, err)
		}
	}
	if err := deleteOne(ctx, s.hmGroups, "hashmap group", id); err != nil {
		return err
	}
	for _, c := range []*mgo.Collection{s.hmMappings, s.hmThresholds} {
		if _, err := c.UpdateMany(ctx, inGroup, bson.D{{Key: "$set", Value: bson.D{{Key: "group_id", Value: ""}}}}); err != nil {
			return fmt.Errorf("delete hashmap group %s: ungroup rules: %w", id, mapErr(err))
		}
	}
	return nil
}

// ---- mappings and thresholds --------------------------------------------------

func (s *Store) checkRefs(ctx context.Context, serviceID, fieldID, groupID string) error {
	if serviceID != "" {
		if err := s.exists(ctx, s.hmServices, "hashmap service", serviceID); err != nil {
			return err
		}
	}
	if fieldID != "" {
		if err := s.exists(ctx, s.hmFields, "hashmap field", fieldID); err != nil {
			return err
		}
	}
	if groupID != "" {
		if err := s.exists(ctx, s.hmGroups, "hashmap group", groupID); err != nil {
			return err
		}
	}
	return nil
}

func (d *hmMappingDoc) mapping() (*hashmap.Mapping, error) {
	c, err := decimal.NewFromString(d.Cost)
	if err != nil {
		return nil, fmt.Errorf("decode mapping %s cost %q: %w", d.ID, d.Cost, err)
	}
	return &hashmap.Mapping{ID: d.ID, ServiceID: d.ServiceID, FieldID: d.FieldID, GroupID: d.GroupID, Value: d.Value, Type: d.Type, Cost: c}, nil
}

// CreateHashmapMapping stores a service or field mapping.
func (s *Store) CreateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error {
	id, err := store.CheckNewMapping(m)
	if err != nil {
		return err
	}
	if err := s.checkRefs(ctx, m.ServiceID, m.FieldID, m.GroupID); err != nil {
		return fmt.Errorf("create hashmap mapping: %w", err)
	}
	d := hmMappingDoc{ID: id, ServiceID: m.ServiceID, FieldID: m.FieldID, GroupID: m.GroupID, Value: m.Value, Type: m.Type, Cost: m.Cost.String(), Ord: ord()}
	if _, err := s.hmMappings.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create hashmap mapping: %w", mapErr(err))
	}
	m.ID = id
	return nil
}

// GetHashmapMapping returns a mapping.
func (s *Store) GetHashmapMapping(ctx context.Context, id string) (*hashmap.Mapping, error) {
	if err := store.CheckKey("get hashmap mapping", "id", id); err != nil {
		return nil, err
	}
	var d hmMappingDoc
	if err := one(ctx, s.hmMappings, byID(id), &d, "hashmap mapping "+id); err != nil {
		return nil, fmt.Errorf("get hashmap mapping: %w", err)
	}
	return d.mapping()
}

// ListHashmapMappings returns every mapping in creation order.
func (s *Store) ListHashmapMappings(ctx context.Context) ([]*hashmap.Mapping, error) {
	docs, err := allOf[hmMappingDoc](ctx, s.hmMappings, bson.D{}, byOrd())
	if err != nil {
		return nil, fmt.Errorf("list hashmap mappings: %w", err)
	}
	out := make([]*hashmap.Mapping, len(docs))
	for i := range docs {
		if out[i], err = docs[i].mapping(); err != nil {
			return nil, fmt.Errorf("list hashmap mappings: %w", err)
		}
	}
	return out, nil
}

// UpdateHashmapMapping replaces a mapping's service or field, group, value,
// type and cost; the unique index refuses a duplicate (ErrConflict).
func (s *Store) UpdateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error {
	if err := store.CheckMappingUpdate(m); err != nil {
		return err
	}
	if err := s.exists(ctx, s.hmMappings, "hashmap mapping", m.ID); err != nil {
		return fmt.Errorf("update hashmap mapping %s: %w", m.ID, err)
	}
	if err := s.checkRefs(ctx, m.ServiceID, m.FieldID, m.GroupID); err != nil {
		return fmt.Errorf("update hashmap mapping %s: %w", m.ID, err)
	}
	res, err := s.hmMappings.UpdateOne(ctx, byID(m.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "service_id", Value: m.ServiceID}, {Key: "field_id", Value: m.FieldID}, {Key: "group_id", Value: m.GroupID},
		{Key: "value", Value: m.Value}, {Key: "type", Value: m.Type}, {Key: "cost", Value: m.Cost.String()},
	}}})
	if err != nil {
		return fmt.Errorf("update hashmap mapping %s: %w", m.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update hashmap mapping %s: %w", m.ID, store.NotFoundf("hashmap mapping %s", m.ID))
	}
	return nil
}

// DeleteHashmapMapping deletes a mapping.
func (s *Store) DeleteHashmapMapping(ctx context.Context, id string) error {
	return deleteOne(ctx, s.hmMappings, "hashmap mapping", id)
}

func (d *hmThresholdDoc) threshold() (*hashmap.Threshold, error) {
	t := &hashmap.Threshold{ID: d.ID, ServiceID: d.ServiceID, FieldID: d.FieldID, GroupID: d.GroupID, Type: d.Type}
	var err error
	if t.Level, err = decimal.NewFromString(d.Level); err != nil {
		return nil, fmt.Errorf("decode threshold %s level %q: %w", d.ID, d.Level, err)
	}
	if t.Cost, err = decimal.NewFromString(d.Cost); err != nil {
		return nil, fmt.Errorf("decode threshold %s cost %q: %w", d.ID, d.Cost, err)
	}
	return t, nil
}

// levelKey is a level's canonical text: equal levels get equal keys.
func levelKey(d decimal.Decimal) string {
	if d.IsZero() {
		return "0"
	}
	return d.String()
}

// CreateHashmapThreshold stores a service or field threshold.
func (s *Store) CreateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error {
	id, err := store.CheckNewThreshold(t)
	if err != nil {
		return err
	}
	if err := s.checkRefs(ctx, t.ServiceID, t.FieldID, t.GroupID); err != nil {
		return fmt.Errorf("create hashmap threshold: %w", err)
	}
	d := hmThresholdDoc{ID: id, ServiceID: t.ServiceID, FieldID: t.FieldID, GroupID: t.GroupID, Level: t.Level.String(),
		LevelKey: levelKey(t.Level), Type: t.Type, Cost: t.Cost.String(), Ord: ord()}
	if _, err := s.hmThresholds.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create hashmap threshold: %w", mapErr(err))
	}
	t.ID = id
	return nil
}

// GetHashmapThreshold returns a threshold.
func (s *Store) GetHashmapThreshold(ctx context.Context, id string) (*hashmap.Threshold, error) {
	if err := store.CheckKey("get hashmap threshold", "id", id); err != nil {
		return nil, err
	}
	var d hmThresholdDoc
	if err := one(ctx, s.hmThresholds, byID(id), &d, "hashmap threshold "+id); err != nil {
		return nil, fmt.Errorf("get hashmap threshold: %w", err)
	}
	return d.threshold()
}

// ListHashmapThresholds returns every threshold in creation order.
func (s *Store) ListHashmapThresholds(ctx context.Context) ([]*hashmap.Threshold, error) {
	docs, err := allOf[hmThresholdDoc](ctx, s.hmThresholds, bson.D{}, byOrd())
	if err != nil {
		return nil, fmt.Errorf("list hashmap thresholds: %w", err)
	}
	out := make([]*hashmap.Threshold, len(docs))
	for i := range docs {
		if out[i], err = docs[i].threshold(); err != nil {
			return nil, fmt.Errorf("list hashmap thresholds: %w", err)
		}
	}
	return out, nil
}

// UpdateHashmapThreshold replaces a threshold's service or field, group,
// level, type and cost.
func (s *Store) UpdateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error {
	if err := store.CheckThresholdUpdate(t); err != nil {
		return err
	}
	if err := s.exists(ctx, s.hmThresholds, "hashmap threshold", t.ID); err != nil {
		return fmt.Errorf("update hashmap threshold %s: %w", t.ID, err)
	}
	if err := s.checkRefs(ctx, t.ServiceID, t.FieldID, t.GroupID); err != nil {
		return fmt.Errorf("update hashmap threshold %s: %w", t.ID, err)
	}
	res, err := s.hmThresholds.UpdateOne(ctx, byID(t.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "service_id", Value: t.ServiceID}, {Key: "field_id", Value: t.FieldID}, {Key: "group_id", Value: t.GroupID},
		{Key: "level", Value: t.Level.String()}, {Key: "level_key", Value: levelKey(t.Level)}, {Key: "type", Value: t.Type},
		{Key: "cost", Value: t.Cost.String()},
	}}})
	if err != nil {
		return fmt.Errorf("update hashmap threshold %s: %w", t.ID, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update hashmap threshold %s: %w", t.ID, store.NotFoundf("hashmap threshold %s", t.ID))
	}
	return nil
}

// DeleteHashmapThreshold deletes a threshold.
func (s *Store) DeleteHashmapThreshold(ctx context.Context, id string) error {
	return deleteOne(ctx, s.hmThresholds, "hashmap threshold", id)
}

// HashmapRules reads the whole configuration. Without a snapshot across
// collections, it reads parents before rules and leaves out rules whose
// service or field is gone; a rule whose group is gone counts ungrouped.
func (s *Store) HashmapRules(ctx context.Context) (*hashmap.RuleSet, error) {
	var r hashmap.RuleSet
	var err error
	if r.Services, err = s.ListHashmapServices(ctx); err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	fields, err := s.ListHashmapFields(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	if r.Groups, err = s.ListHashmapGroups(ctx); err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	mappings, err := s.ListHashmapMappings(ctx)
	if err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	thresholds, err := s.ListHashmapThresholds(ctx)
	if err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	svcs, flds, grps := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, v := range r.Services {
		svcs[v.ID] = true
	}
	r.Fields = []*hashmap.Field{}
	for _, f := range fields {
		if svcs[f.ServiceID] {
			r.Fields = append(r.Fields, f)
			flds[f.ID] = true
		}
	}
	for _, g := range r.Groups {
		grps[g.ID] = true
	}
	live := func(serviceID, fieldID string) bool {
		return (serviceID != "" && svcs[serviceID]) || (fieldID != "" && flds[fieldID])
	}
	r.Mappings = []*hashmap.Mapping{}
	for _, m := range mappings {
		if live(m.ServiceID, m.FieldID) {
			if m.GroupID != "" && !grps[m.GroupID] {
				m.GroupID = ""
			}
			r.Mappings = append(r.Mappings, m)
		}
	}
	r.Thresholds = []*hashmap.Threshold{}
	for _, t := range thresholds {
		if live(t.ServiceID, t.FieldID) {
			if t.GroupID != "" && !grps[t.GroupID] {
				t.GroupID = ""
			}
			r.Thresholds = append(r.Thresholds, t)
		}
	}
	return &r, nil
}
