package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// ---- services, fields, groups -----------------------------------------------

// CreateHashmapService stores a service; names are unique.
func (s *Store) CreateHashmapService(ctx context.Context, svc *hashmap.Service) error {
	id, err := store.CheckNewService(svc)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_services (id, name) VALUES (?, ?)`, id, svc.Name)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create hashmap service %s: %w", svc.Name, err)
	}
	svc.ID = id
	return nil
}

func scanService(sc scanner) (*hashmap.Service, error) {
	var v hashmap.Service
	if err := sc.Scan(&v.ID, &v.Name); err != nil {
		return nil, err
	}
	return &v, nil
}

// GetHashmapService returns a service.
func (s *Store) GetHashmapService(ctx context.Context, id string) (*hashmap.Service, error) {
	if err := store.CheckKey("get hashmap service", "id", id); err != nil {
		return nil, err
	}
	v, err := scanService(s.r.QueryRowContext(ctx, `SELECT id, name FROM hashmap_services WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get hashmap service: %w", noRows(err, "hashmap service "+id))
	}
	return v, nil
}

const listServices = `SELECT id, name FROM hashmap_services ORDER BY rowid`

// ListHashmapServices returns every service in creation order.
func (s *Store) ListHashmapServices(ctx context.Context) ([]*hashmap.Service, error) {
	out, err := list(ctx, s.r, scanService, listServices)
	if err != nil {
		return nil, fmt.Errorf("list hashmap services: %w", err)
	}
	return out, nil
}

// DeleteHashmapService deletes a service with its fields, mappings and
// thresholds.
func (s *Store) DeleteHashmapService(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "hashmap_services", "hashmap service", id)
}

func (s *Store) deleteByID(ctx context.Context, table, what, id string) error {
	if err := store.CheckKey("delete "+what, "id", id); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
		if err != nil {
			return mapErr(err)
		}
		return mustAffect(res, what+" "+id)
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, id, err)
	}
	return nil
}

// exists reports ErrNotFound when no row of table has id.
func exists(ctx context.Context, tx *sql.Tx, table, what, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, id).Scan(&one)
	return noRows(err, what+" "+id)
}

// CreateHashmapField stores a field of an existing service; names are
// unique within the service.
func (s *Store) CreateHashmapField(ctx context.Context, f *hashmap.Field) error {
	id, err := store.CheckNewField(f)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "hashmap_services", "service", f.ServiceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_fields (id, service_id, name) VALUES (?, ?, ?)`, id, f.ServiceID, f.Name)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create hashmap field %s: %w", f.Name, err)
	}
	f.ID = id
	return nil
}

func scanField(sc scanner) (*hashmap.Field, error) {
	var v hashmap.Field
	if err := sc.Scan(&v.ID, &v.ServiceID, &v.Name); err != nil {
		return nil, err
	}
	return &v, nil
}

// GetHashmapField returns a field.
func (s *Store) GetHashmapField(ctx context.Context, id string) (*hashmap.Field, error) {
	if err := store.CheckKey("get hashmap field", "id", id); err != nil {
		return nil, err
	}
	v, err := scanField(s.r.QueryRowContext(ctx, `SELECT id, service_id, name FROM hashmap_fields WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get hashmap field: %w", noRows(err, "hashmap field "+id))
	}
	return v, nil
}

const listFields = `SELECT id, service_id, name FROM hashmap_fields WHERE ?1 = '' OR service_id = ?1 ORDER BY rowid`

// ListHashmapFields lists a service's fields (every field when serviceID is
// empty) in creation order; an unknown service is ErrNotFound.
func (s *Store) ListHashmapFields(ctx context.Context, serviceID string) ([]*hashmap.Field, error) {
	var out []*hashmap.Field
	err := s.read(ctx, func(tx *sql.Tx) error {
		if serviceID != "" {
			if err := exists(ctx, tx, "hashmap_services", "hashmap service", serviceID); err != nil {
				return err
			}
		}
		var err error
		out, err = list(ctx, tx, scanField, listFields, serviceID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list hashmap fields: %w", err)
	}
	return out, nil
}

// DeleteHashmapField deletes a field with its mappings and thresholds.
func (s *Store) DeleteHashmapField(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "hashmap_fields", "hashmap field", id)
}

// CreateHashmapGroup stores a group; names are unique.
func (s *Store) CreateHashmapGroup(ctx context.Context, g *hashmap.Group) error {
	id, err := store.CheckNewGroup(g)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_groups (id, name) VALUES (?, ?)`, id, g.Name)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create hashmap group %s: %w", g.Name, err)
	}
	g.ID = id
	return nil
}

func scanGroup(sc scanner) (*hashmap.Group, error) {
	var v hashmap.Group
	if err := sc.Scan(&v.ID, &v.Name); err != nil {
		return nil, err
	}
	return &v, nil
}

// GetHashmapGroup returns a group.
func (s *Store) GetHashmapGroup(ctx context.Context, id string) (*hashmap.Group, error) {
	if err := store.CheckKey("get hashmap group", "id", id); err != nil {
		return nil, err
	}
	v, err := scanGroup(s.r.QueryRowContext(ctx, `SELECT id, name FROM hashmap_groups WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get hashmap group: %w", noRows(err, "hashmap group "+id))
	}
	return v, nil
}

const listGroups = `SELECT id, name FROM hashmap_groups ORDER BY rowid`

// ListHashmapGroups returns every group in creation order.
func (s *Store) ListHashmapGroups(ctx context.Context) ([]*hashmap.Group, error) {
	out, err := list(ctx, s.r, scanGroup, listGroups)
	if err != nil {
		return nil, fmt.Errorf("list hashmap groups: %w", err)
	}
	return out, nil
}

// DeleteHashmapGroup deletes a group; its mappings and thresholds stay,
// ungrouped. When ungrouping would make two rules of the default group
// collide, nothing is deleted and the error is ErrConflict.
func (s *Store) DeleteHashmapGroup(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "hashmap_groups", "hashmap group", id)
}

// ---- mappings and thresholds --------------------------------------------------

func checkRefs(ctx context.Context, tx *sql.Tx, serviceID, fieldID, groupID string) error {
	if serviceID != "" {
		if err := exists(ctx, tx, "hashmap_services", "hashmap service", serviceID); err != nil {
			return err
		}
	}
	if fieldID != "" {
		if err := exists(ctx, tx, "hashmap_fields", "hashmap field", fieldID); err != nil {
			return err
		}
	}
	if groupID != "" {
		if err := exists(ctx, tx, "hashmap_groups", "hashmap group", groupID); err != nil {
			return err
		}
	}
	return nil
}

const mappingCols = `id, coalesce(service_id, ''), coalesce(field_id, ''), coalesce(group_id, ''), value, type, cost`

func scanMapping(sc scanner) (*hashmap.Mapping, error) {
	var m hashmap.Mapping
	var cost string
	if err := sc.Scan(&m.ID, &m.ServiceID, &m.FieldID, &m.GroupID, &m.Value, &m.Type, &cost); err != nil {
		return nil, err
	}
	c, err := decimal.NewFromString(cost)
	if err != nil {
		return nil, fmt.Errorf("decode mapping %s cost %q: %w", m.ID, cost, err)
	}
	m.Cost = c
	return &m, nil
}

// CreateHashmapMapping stores a service or field mapping.
func (s *Store) CreateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error {
	id, err := store.CheckNewMapping(m)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := checkRefs(ctx, tx, m.ServiceID, m.FieldID, m.GroupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_mappings (id, service_id, field_id, group_id, value, type, cost) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, nullStr(m.ServiceID), nullStr(m.FieldID), nullStr(m.GroupID), m.Value, m.Type, m.Cost.String())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create hashmap mapping: %w", err)
	}
	m.ID = id
	return nil
}

// GetHashmapMapping returns a mapping.
func (s *Store) GetHashmapMapping(ctx context.Context, id string) (*hashmap.Mapping, error) {
	if err := store.CheckKey("get hashmap mapping", "id", id); err != nil {
		return nil, err
	}
	m, err := scanMapping(s.r.QueryRowContext(ctx, `SELECT `+mappingCols+` FROM hashmap_mappings WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get hashmap mapping: %w", noRows(err, "hashmap mapping "+id))
	}
	return m, nil
}

const listMappings = `SELECT ` + mappingCols + ` FROM hashmap_mappings ORDER BY rowid`

// ListHashmapMappings returns every mapping in creation order.
func (s *Store) ListHashmapMappings(ctx context.Context) ([]*hashmap.Mapping, error) {
	out, err := list(ctx, s.r, scanMapping, listMappings)
	if err != nil {
		return nil, fmt.Errorf("list hashmap mappings: %w", err)
	}
	return out, nil
}

// UpdateHashmapMapping replaces a mapping's service or field, group, value,
// type and cost.
func (s *Store) UpdateHashmapMapping(ctx context.Context, m *hashmap.Mapping) error {
	if err := store.CheckMappingUpdate(m); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "hashmap_mappings", "hashmap mapping", m.ID); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, m.ServiceID, m.FieldID, m.GroupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE hashmap_mappings SET service_id = ?, field_id = ?, group_id = ?, value = ?, type = ?, cost = ? WHERE id = ?`,
			nullStr(m.ServiceID), nullStr(m.FieldID), nullStr(m.GroupID), m.Value, m.Type, m.Cost.String(), m.ID)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update hashmap mapping %s: %w", m.ID, err)
	}
	return nil
}

// DeleteHashmapMapping deletes a mapping.
func (s *Store) DeleteHashmapMapping(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "hashmap_mappings", "hashmap mapping", id)
}

const thresholdCols = `id, coalesce(service_id, ''), coalesce(field_id, ''), coalesce(group_id, ''), level, type, cost`

func scanThreshold(sc scanner) (*hashmap.Threshold, error) {
	var t hashmap.Threshold
	var level, cost string
	if err := sc.Scan(&t.ID, &t.ServiceID, &t.FieldID, &t.GroupID, &level, &t.Type, &cost); err != nil {
		return nil, err
	}
	var err error
	if t.Level, err = decimal.NewFromString(level); err != nil {
		return nil, fmt.Errorf("decode threshold %s level %q: %w", t.ID, level, err)
	}
	if t.Cost, err = decimal.NewFromString(cost); err != nil {
		return nil, fmt.Errorf("decode threshold %s cost %q: %w", t.ID, cost, err)
	}
	return &t, nil
}

// CreateHashmapThreshold stores a service or field threshold.
func (s *Store) CreateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error {
	id, err := store.CheckNewThreshold(t)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := checkRefs(ctx, tx, t.ServiceID, t.FieldID, t.GroupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO hashmap_thresholds (id, service_id, field_id, group_id, level, type, cost) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, nullStr(t.ServiceID), nullStr(t.FieldID), nullStr(t.GroupID), t.Level.String(), t.Type, t.Cost.String())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("create hashmap threshold: %w", err)
	}
	t.ID = id
	return nil
}

// GetHashmapThreshold returns a threshold.
func (s *Store) GetHashmapThreshold(ctx context.Context, id string) (*hashmap.Threshold, error) {
	if err := store.CheckKey("get hashmap threshold", "id", id); err != nil {
		return nil, err
	}
	t, err := scanThreshold(s.r.QueryRowContext(ctx, `SELECT `+thresholdCols+` FROM hashmap_thresholds WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get hashmap threshold: %w", noRows(err, "hashmap threshold "+id))
	}
	return t, nil
}

const listThresholds = `SELECT ` + thresholdCols + ` FROM hashmap_thresholds ORDER BY rowid`

// ListHashmapThresholds returns every threshold in creation order.
func (s *Store) ListHashmapThresholds(ctx context.Context) ([]*hashmap.Threshold, error) {
	out, err := list(ctx, s.r, scanThreshold, listThresholds)
	if err != nil {
		return nil, fmt.Errorf("list hashmap thresholds: %w", err)
	}
	return out, nil
}

// UpdateHashmapThreshold replaces a threshold's service or field, group,
// level, type and cost.
func (s *Store) UpdateHashmapThreshold(ctx context.Context, t *hashmap.Threshold) error {
	if err := store.CheckThresholdUpdate(t); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "hashmap_thresholds", "hashmap threshold", t.ID); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, t.ServiceID, t.FieldID, t.GroupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE hashmap_thresholds SET service_id = ?, field_id = ?, group_id = ?, level = ?, type = ?, cost = ? WHERE id = ?`,
			nullStr(t.ServiceID), nullStr(t.FieldID), nullStr(t.GroupID), t.Level.String(), t.Type, t.Cost.String(), t.ID)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update hashmap threshold %s: %w", t.ID, err)
	}
	return nil
}

// DeleteHashmapThreshold deletes a threshold.
func (s *Store) DeleteHashmapThreshold(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "hashmap_thresholds", "hashmap threshold", id)
}

// HashmapRules reads the whole configuration in one snapshot.
func (s *Store) HashmapRules(ctx context.Context) (*hashmap.RuleSet, error) {
	var r hashmap.RuleSet
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if r.Services, err = list(ctx, tx, scanService, listServices); err != nil {
			return err
		}
		if r.Fields, err = list(ctx, tx, scanField, listFields, ""); err != nil {
			return err
		}
		if r.Groups, err = list(ctx, tx, scanGroup, listGroups); err != nil {
			return err
		}
		if r.Mappings, err = list(ctx, tx, scanMapping, listMappings); err != nil {
			return err
		}
		r.Thresholds, err = list(ctx, tx, scanThreshold, listThresholds)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read hashmap rules: %w", err)
	}
	return &r, nil
}
