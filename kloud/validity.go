package kloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// Validity dates of hashmap mappings and thresholds (CloudKitty 2025.2):
// a rule prices only the periods inside [start, end). Once its start has
// passed, a rule is history that rated periods rest on: only its end may
// change (409 otherwise), so a price change is a new rule starting when the
// old one ends.

// mappingView is a mapping with its validity.
type mappingView struct {
	*hashmap.Mapping
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
}

// thresholdView is a threshold with its validity.
type thresholdView struct {
	*hashmap.Threshold
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// validities reads every rule's validity by rule id.
func (s *Server) validities(ctx context.Context) (map[string]store.RuleValidity, error) {
	list, err := s.st.ListRuleValidities(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.RuleValidity, len(list))
	for _, v := range list {
		out[v.RuleID] = *v
	}
	return out, nil
}

func (s *Server) mappingViews(ctx context.Context, ms []*hashmap.Mapping) ([]mappingView, error) {
	vs, err := s.validities(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]mappingView, len(ms))
	for i, m := range ms {
		v := vs[m.ID]
		out[i] = mappingView{Mapping: m, Start: optTime(v.Start), End: optTime(v.End)}
	}
	return out, nil
}

func (s *Server) thresholdViews(ctx context.Context, ts []*hashmap.Threshold) ([]thresholdView, error) {
	vs, err := s.validities(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]thresholdView, len(ts))
	for i, t := range ts {
		v := vs[t.ID]
		out[i] = thresholdView{Threshold: t, Start: optTime(v.Start), End: optTime(v.End)}
	}
	return out, nil
}

func (s *Server) handleGetMapping(w http.ResponseWriter, r *http.Request) {
	m, err := s.st.GetHashmapMapping(r.Context(), r.PathValue("id"))
	if errorsIsNotFound(err) {
		err = notFound("hashmap mapping", r.PathValue("id"))
	}
	var views []mappingView
	if err == nil {
		views, err = s.mappingViews(r.Context(), []*hashmap.Mapping{m})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, views[0])
}

func (s *Server) handleGetThreshold(w http.ResponseWriter, r *http.Request) {
	t, err := s.st.GetHashmapThreshold(r.Context(), r.PathValue("id"))
	if errorsIsNotFound(err) {
		err = notFound("hashmap threshold", r.PathValue("id"))
	}
	var views []thresholdView
	if err == nil {
		views, err = s.thresholdViews(r.Context(), []*hashmap.Threshold{t})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, views[0])
}

// deleteRule deletes a mapping or threshold, then its validity.
func (s *Server) deleteRule(kind string, del func(context.Context, string) error) http.HandlerFunc {
	return deleteHandler(s, kind, func(ctx context.Context, id string) error {
		if err := del(ctx, id); err != nil {
			return err
		}
		return s.st.DeleteRuleValidity(ctx, id)
	})
}

// ruleValidity reads a rule request's start and end.
func ruleValidity(req ruleRequest) (store.RuleValidity, error) {
	var v store.RuleValidity
	for _, f := range []struct {
		name string
		in   string
		dst  *time.Time
	}{{"start", req.Start, &v.Start}, {"end", req.End, &v.End}} {
		if f.in == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.in)
		if err != nil {
			return v, unprocessable(f.name, "%s %s is not an RFC 3339 time", f.name, quote(f.in))
		}
		*f.dst = t.UTC()
	}
	if !v.Start.IsZero() && !v.End.IsZero() && !v.End.After(v.Start) {
		return v, unprocessable("end", "end must be after start")
	}
	return v, nil
}

// savedRule stores a rule and its validity. A new rule gets its id and
// validity first, so it never prices outside its dates; a rule whose start
// has passed may only have its end changed.
type savedRule struct {
	s        *Server
	inner    saver
	id       *string // the rule's id field (empty for a new rule)
	prefix   string
	validity store.RuleValidity
	// same reports whether the stored rule equals the one to save.
	same func(ctx context.Context) (bool, error)
}

func (sr savedRule) save(ctx context.Context) (int, any, error) {
	s := sr.s
	if *sr.id == "" {
		*sr.id = store.NewID(sr.prefix)
		if err := s.st.PutRuleValidity(ctx, &store.RuleValidity{RuleID: *sr.id, Start: sr.validity.Start, End: sr.validity.End}); err != nil {
			return 0, nil, err
		}
		status, answer, err := sr.inner.save(ctx)
		if err != nil {
			_ = s.st.DeleteRuleValidity(context.WithoutCancel(ctx), *sr.id)
			return 0, nil, err
		}
		return status, sr.withValidity(answer), nil
	}
	vs, err := s.validities(ctx)
	if err != nil {
		return 0, nil, err
	}
	old, had := vs[*sr.id]
	if had && !old.Start.IsZero() && !old.Start.After(s.now()) {
		if sr.validity.Start.IsZero() {
			sr.validity.Start = old.Start // a started rule keeps its start
		}
		if !sr.validity.Start.Equal(old.Start) {
			return 0, nil, conflict("start", "rule %s started at %s: only its end may change", *sr.id, old.Start.Format(time.RFC3339))
		}
		same, err := sr.same(ctx)
		if err != nil {
			return 0, nil, err
		}
		if !same {
			return 0, nil, conflict("end", "rule %s started at %s: only its end may change; end it and create a new rule", *sr.id, old.Start.Format(time.RFC3339))
		}
	}
	status, answer, err := sr.inner.save(ctx)
	if err != nil {
		return 0, nil, err
	}
	if err := s.st.PutRuleValidity(ctx, &store.RuleValidity{RuleID: *sr.id, Start: sr.validity.Start, End: sr.validity.End}); err != nil {
		return 0, nil, err
	}
	return status, sr.withValidity(answer), nil
}

func (sr savedRule) withValidity(answer any) any {
	switch v := answer.(type) {
	case *hashmap.Mapping:
		return mappingView{Mapping: v, Start: optTime(sr.validity.Start), End: optTime(sr.validity.End)}
	case *hashmap.Threshold:
		return thresholdView{Threshold: v, Start: optTime(sr.validity.Start), End: optTime(sr.validity.End)}
	}
	return answer
}

// dated wraps a mapping's or threshold's saver with its validity.
func (s *Server) dated(req ruleRequest, inner saver, id *string, prefix string, same func(ctx context.Context) (bool, error)) (saver, error) {
	v, err := ruleValidity(req)
	if err != nil {
		return nil, err
	}
	return savedRule{s: s, inner: inner, id: id, prefix: prefix, validity: v, same: same}, nil
}

// ---- reprocess --------------------------------------------------------------------

// reprocessRequest is POST /api/v1/rating/reprocess.
type reprocessRequest struct {
	Scope  string `json:"scope"`
	Begin  string `json:"begin"`
	End    string `json:"end"`
	DryRun bool   `json:"dry_run"`
}

// maxReprocessWindow bounds one re-rating's window.
const maxReprocessWindow = 366 * 24 * time.Hour

func (s *Server) handleReprocess(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req reprocessRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var begin, end time.Time
	for _, f := range []struct {
		name, in string
		dst      *time.Time
	}{{"begin", req.Begin, &begin}, {"end", req.End, &end}} {
		if f.in == "" {
			s.writeError(w, r, unprocessable(f.name, "%s is required", f.name))
			return
		}
		t, err := time.Parse(time.RFC3339, f.in)
		if err != nil {
			s.writeError(w, r, unprocessable(f.name, "%s %s is not an RFC 3339 time", f.name, quote(f.in)))
			return
		}
		*f.dst = t.UTC()
	}
	if !end.After(begin) {
		s.writeError(w, r, unprocessable("end", "end must be after begin"))
		return
	}
	if end.Sub(begin) > maxReprocessWindow {
		s.writeError(w, r, unprocessable("end", "a re-rating covers at most 366 days"))
		return
	}
	var scopes []string
	switch scope := strings.TrimPrefix(req.Scope, "user:"); {
	case scope == "":
		states, err := s.st.ListScopeStates(ctx)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, st := range states {
			scopes = append(scopes, st.Scope)
		}
	default:
		if _, err := s.st.GetScopeState(ctx, scope); err != nil {
			if errorsIsNotFound(err) {
				err = notFound("rated scope", scope)
			}
			s.writeError(w, r, err)
			return
		}
		scopes = []string{scope}
	}
	out, err := s.rating.Reprocess(ctx, scopes, begin, end, req.DryRun)
	if errors.Is(err, ratingbridge.ErrTooManyPeriods) {
		err = unprocessable("end", "%s", err.Error())
	}
	if err != nil {
		s.writeError(w, r, fmt.Errorf("reprocess: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
