package kloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// The hashmap module's own API, in CloudKitty's v1 shapes: services,
// fields, groups, mappings and thresholds. Reads are open to every user;
// changes are for admins and apply from the next rated period.
func (s *Server) hashmapRoutes(m *http.ServeMux) {
	const base = "/api/v1/rating/modules/hashmap/"
	a, admin := s.authenticate, s.adminOnly
	m.HandleFunc("GET "+base+"services", a(s.handleListServices))
	m.HandleFunc("POST "+base+"services", admin(s.handleCreateService))
	m.HandleFunc("GET "+base+"services/{id}", a(getHandler(s, "hashmap service", s.st.GetHashmapService)))
	m.HandleFunc("DELETE "+base+"services/{id}", admin(deleteHandler(s, "hashmap service", s.st.DeleteHashmapService)))

	m.HandleFunc("GET "+base+"fields", a(s.handleListFields))
	m.HandleFunc("POST "+base+"fields", admin(s.handleCreateField))
	m.HandleFunc("GET "+base+"fields/{id}", a(getHandler(s, "hashmap field", s.st.GetHashmapField)))
	m.HandleFunc("DELETE "+base+"fields/{id}", admin(deleteHandler(s, "hashmap field", s.st.DeleteHashmapField)))

	m.HandleFunc("GET "+base+"groups", a(s.handleListGroups))
	m.HandleFunc("POST "+base+"groups", admin(s.handleCreateGroup))
	m.HandleFunc("GET "+base+"groups/{id}", a(getHandler(s, "hashmap group", s.st.GetHashmapGroup)))
	m.HandleFunc("DELETE "+base+"groups/{id}", admin(deleteHandler(s, "hashmap group", s.st.DeleteHashmapGroup)))

	m.HandleFunc("GET "+base+"mappings", a(s.handleListMappings))
	m.HandleFunc("POST "+base+"mappings", admin(s.handleSaveMapping))
	m.HandleFunc("GET "+base+"mappings/{id}", a(s.handleGetMapping))
	m.HandleFunc("PUT "+base+"mappings/{id}", admin(s.handleSaveMapping))
	m.HandleFunc("DELETE "+base+"mappings/{id}", admin(s.deleteRule("hashmap mapping", s.st.DeleteHashmapMapping)))

	m.HandleFunc("GET "+base+"thresholds", a(s.handleListThresholds))
	m.HandleFunc("POST "+base+"thresholds", admin(s.handleSaveThreshold))
	m.HandleFunc("GET "+base+"thresholds/{id}", a(s.handleGetThreshold))
	m.HandleFunc("PUT "+base+"thresholds/{id}", admin(s.handleSaveThreshold))
	m.HandleFunc("DELETE "+base+"thresholds/{id}", admin(s.deleteRule("hashmap threshold", s.st.DeleteHashmapThreshold)))
}

func getHandler[T any](s *Server, kind string, get func(context.Context, string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := get(r.Context(), r.PathValue("id"))
		if errorsIsNotFound(err) {
			err = notFound(kind, r.PathValue("id"))
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func deleteHandler(s *Server, kind string, del func(context.Context, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := del(r.Context(), r.PathValue("id"))
		if errorsIsNotFound(err) {
			err = notFound(kind, r.PathValue("id"))
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func listAnswer[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *Server) handleListServices(w http.ResponseWriter, r *http.Request) {
	items, err := s.st.ListHashmapServices(r.Context())
	listAnswer(s, w, r, items, err)
}

func (s *Server) handleListGroups(w http.ResponseWriter, r *http.Request) {
	items, err := s.st.ListHashmapGroups(r.Context())
	listAnswer(s, w, r, items, err)
}

func (s *Server) handleListFields(w http.ResponseWriter, r *http.Request) {
	items, err := s.st.ListHashmapFields(r.Context(), r.URL.Query().Get("service_id"))
	listAnswer(s, w, r, items, err)
}

// matchesQuery keeps a rule when every id filter given in the query string
// equals the rule's.
func matchesQuery(r *http.Request, ids map[string]string) bool {
	q := r.URL.Query()
	for k, v := range ids {
		if want := q.Get(k); want != "" && want != v {
			return false
		}
	}
	return true
}

func (s *Server) handleListMappings(w http.ResponseWriter, r *http.Request) {
	all, err := s.st.ListHashmapMappings(r.Context())
	var items []*hashmap.Mapping
	for _, m := range all {
		if matchesQuery(r, map[string]string{"service_id": m.ServiceID, "field_id": m.FieldID, "group_id": m.GroupID}) {
			items = append(items, m)
		}
	}
	var views []mappingView
	if err == nil {
		views, err = s.mappingViews(r.Context(), items)
	}
	listAnswer(s, w, r, views, err)
}

func (s *Server) handleListThresholds(w http.ResponseWriter, r *http.Request) {
	all, err := s.st.ListHashmapThresholds(r.Context())
	var items []*hashmap.Threshold
	for _, t := range all {
		if matchesQuery(r, map[string]string{"service_id": t.ServiceID, "field_id": t.FieldID, "group_id": t.GroupID}) {
			items = append(items, t)
		}
	}
	var views []thresholdView
	if err == nil {
		views, err = s.thresholdViews(r.Context(), items)
	}
	listAnswer(s, w, r, views, err)
}

type nameRequest struct {
	Name string `json:"name"`
}

func (s *Server) handleCreateService(w http.ResponseWriter, r *http.Request) {
	createNamed(s, w, r, "service", func(name string) *hashmap.Service { return &hashmap.Service{Name: name} }, s.st.CreateHashmapService)
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request) {
	createNamed(s, w, r, "group", func(name string) *hashmap.Group { return &hashmap.Group{Name: name} }, s.st.CreateHashmapGroup)
}

// createNamed creates a rule that is only a name (a service, a group).
func createNamed[T any](s *Server, w http.ResponseWriter, r *http.Request, kind string, build func(name string) *T, create func(context.Context, *T) error) {
	var req nameRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		s.writeError(w, r, unprocessable("name", "name is required"))
		return
	}
	v := build(name)
	if err := create(r.Context(), v); err != nil {
		s.writeError(w, r, takenOr(err, kind, name))
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

// takenOr words a duplicate name as the caller's mistake (409 "service
// name X is taken") instead of the store's constraint text.
func takenOr(err error, kind, name string) error {
	if errors.Is(err, store.ErrConflict) {
		return conflict("name", "%s name %s is taken", kind, quote(name))
	}
	return fmt.Errorf("create %s %s: %w", kind, quote(name), err)
}

type fieldRequest struct {
	ServiceID string `json:"service_id"`
	Name      string `json:"name"`
}

func (s *Server) handleCreateField(w http.ResponseWriter, r *http.Request) {
	var req fieldRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.ServiceID == "":
		s.writeError(w, r, unprocessable("service_id", "service_id is required"))
		return
	case strings.TrimSpace(req.Name) == "":
		s.writeError(w, r, unprocessable("name", "name is required"))
		return
	}
	if _, err := s.st.GetHashmapService(r.Context(), req.ServiceID); err != nil {
		if errorsIsNotFound(err) {
			err = notFound("hashmap service", req.ServiceID)
		}
		s.writeError(w, r, err)
		return
	}
	f := &hashmap.Field{ServiceID: req.ServiceID, Name: strings.TrimSpace(req.Name)}
	if err := s.st.CreateHashmapField(r.Context(), f); err != nil {
		s.writeError(w, r, takenOr(err, "field", f.Name))
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

// ruleRequest is a mapping or threshold as CloudKitty's v1 API takes it:
// cost and level as decimal strings or numbers.
type ruleRequest struct {
	ServiceID string `json:"service_id"`
	FieldID   string `json:"field_id"`
	GroupID   string `json:"group_id"`
	Value     string `json:"value"`
	Type      string `json:"type"`
	Cost      any    `json:"cost"`
	Level     any    `json:"level"`
	TenantID  string `json:"tenant_id"`
	Start     string `json:"start"`
	End       string `json:"end"`
}

// checkRuleRefs answers 404 for a service, field or group id that does
// not exist.
func (s *Server) checkRuleRefs(ctx context.Context, req ruleRequest) error {
	if req.ServiceID != "" {
		if _, err := s.st.GetHashmapService(ctx, req.ServiceID); err != nil {
			return fmt.Errorf("service_id %s: %w", req.ServiceID, err)
		}
	}
	if req.FieldID != "" {
		if _, err := s.st.GetHashmapField(ctx, req.FieldID); err != nil {
			return fmt.Errorf("field_id %s: %w", req.FieldID, err)
		}
	}
	if req.GroupID != "" {
		if _, err := s.st.GetHashmapGroup(ctx, req.GroupID); err != nil {
			return fmt.Errorf("group_id %s: %w", req.GroupID, err)
		}
	}
	return nil
}

// handleSaveMapping creates (POST) or replaces (PUT …/{id}) a mapping.
func (s *Server) handleSaveMapping(w http.ResponseWriter, r *http.Request) {
	s.saveRule(w, r, func(req ruleRequest) (saver, error) {
		if req.Level != nil {
			return nil, unprocessable("level", "a mapping has no level (thresholds do)")
		}
		cost, err := decimalField("cost", req.Cost, true)
		if err != nil {
			return nil, err
		}
		m := &hashmap.Mapping{ID: r.PathValue("id"), ServiceID: req.ServiceID, FieldID: req.FieldID, GroupID: req.GroupID, Value: req.Value, Type: req.Type, Cost: cost}
		if m.Type == "" {
			m.Type = hashmap.CostFlat
		}
		if err := hashmap.ValidateMapping(m); err != nil {
			return nil, err
		}
		return s.dated(req, rule[hashmap.Mapping]{v: m, id: m.ID, create: s.st.CreateHashmapMapping, update: s.st.UpdateHashmapMapping}, &m.ID, "map-",
			func(ctx context.Context) (bool, error) {
				old, err := s.st.GetHashmapMapping(ctx, m.ID)
				if err != nil {
					return false, err
				}
				return old.ServiceID == m.ServiceID && old.FieldID == m.FieldID && old.GroupID == m.GroupID && old.Value == m.Value &&
					old.Type == m.Type && old.Cost.Equal(m.Cost), nil
			})
	})
}

// handleSaveThreshold creates (POST) or replaces (PUT …/{id}) a threshold.
func (s *Server) handleSaveThreshold(w http.ResponseWriter, r *http.Request) {
	s.saveRule(w, r, func(req ruleRequest) (saver, error) {
		if req.Value != "" {
			return nil, unprocessable("value", "a threshold has no value (field mappings do); it has a level")
		}
		cost, err := decimalField("cost", req.Cost, true)
		if err != nil {
			return nil, err
		}
		level, err := decimalField("level", req.Level, true)
		if err != nil {
			return nil, err
		}
		t := &hashmap.Threshold{ID: r.PathValue("id"), ServiceID: req.ServiceID, FieldID: req.FieldID, GroupID: req.GroupID, Level: level, Type: req.Type, Cost: cost}
		if t.Type == "" {
			t.Type = hashmap.CostFlat
		}
		if err := hashmap.ValidateThreshold(t); err != nil {
			return nil, err
		}
		return s.dated(req, rule[hashmap.Threshold]{v: t, id: t.ID, create: s.st.CreateHashmapThreshold, update: s.st.UpdateHashmapThreshold}, &t.ID, "thr-",
			func(ctx context.Context) (bool, error) {
				old, err := s.st.GetHashmapThreshold(ctx, t.ID)
				if err != nil {
					return false, err
				}
				return old.ServiceID == t.ServiceID && old.FieldID == t.FieldID && old.GroupID == t.GroupID && old.Level.Equal(t.Level) &&
					old.Type == t.Type && old.Cost.Equal(t.Cost), nil
			})
	})
}

// saver stores one checked rule and returns it as answered.
type saver interface {
	save(ctx context.Context) (status int, answer any, err error)
}

// rule is a mapping or threshold ready to be created (no id) or replaced.
type rule[T any] struct {
	v              *T
	id             string
	create, update func(context.Context, *T) error
}

func (r rule[T]) save(ctx context.Context) (int, any, error) {
	if r.id != "" {
		return http.StatusOK, r.v, r.update(ctx, r.v)
	}
	return http.StatusCreated, r.v, r.create(ctx, r.v)
}

// saveRule decodes a rule request, lets build check it, answers 404 for
// ids that do not exist, and stores it.
func (s *Server) saveRule(w http.ResponseWriter, r *http.Request, build func(ruleRequest) (saver, error)) {
	ctx := r.Context()
	var req ruleRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sv, err := build(req)
	if err == nil {
		err = s.checkRuleRefs(ctx, req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status, answer, err := sv.save(ctx)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("save rule: %w", err))
		return
	}
	writeJSON(w, status, answer)
}
