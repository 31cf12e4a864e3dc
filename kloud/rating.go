package kloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// estimate prices one hour of every planned machine.
func (s *Server) estimate(ctx context.Context, providerName string, ms []client.PlannedMachine) (client.CostEstimate, error) {
	machines := make([]ratingbridge.EstimateMachine, len(ms))
	for i, m := range ms {
		machines[i] = ratingbridge.EstimateMachine{Provider: providerName, Size: m.Size, Region: m.Region, Image: m.Image, Label: m.Label}
	}
	hourly, err := s.rating.Pipeline().EstimateHourly(ctx, machines)
	if err != nil {
		return client.CostEstimate{}, err
	}
	return client.CostEstimate{Hourly: hourly.String(), Monthly: ratingbridge.Monthly(hourly).String(), Currency: s.cfg.Currency}, nil
}

func (s *Server) ratingRoutes(m *http.ServeMux) {
	a, admin := s.authenticate, s.adminOnly
	m.HandleFunc("GET /api/v1/rating/modules", a(s.handleListModules))
	m.HandleFunc("GET /api/v1/rating/modules/{name}", a(s.handleGetModule))
	m.HandleFunc("PUT /api/v1/rating/modules/{name}", admin(s.handleUpdateModule))
	m.HandleFunc("POST /api/v1/rating/quote", a(s.handleQuote))
	m.HandleFunc("POST /api/v1/rating/process", admin(s.handleProcess))
	m.HandleFunc("POST /api/v1/rating/reprocess", admin(s.handleReprocess))
	m.HandleFunc("GET /api/v1/rating/summary", a(s.handleSummary))
	m.HandleFunc("GET /api/v1/rating/dataframes", a(s.handleDataFrames))
	s.hashmapRoutes(m)
	m.HandleFunc("GET /api/v1/reports", a(s.handleListReports))
	m.HandleFunc("GET /api/v1/reports/{name}", a(s.handleGetReport))
}

func (s *Server) handleListModules(w http.ResponseWriter, r *http.Request) {
	l, err := parseList(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mods, err := s.rating.Pipeline().ListModules(r.Context())
	listPage(s, w, r, l, mods, err, positionKey, asIs)
}

func (s *Server) handleGetModule(w http.ResponseWriter, r *http.Request) {
	mod, err := s.rating.Pipeline().GetModule(r.Context(), r.PathValue("name"))
	if errorsIsNotFound(err) {
		err = notFound("rating module", r.PathValue("name"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, mod)
}

func (s *Server) handleUpdateModule(w http.ResponseWriter, r *http.Request) {
	var req ratingbridge.ModuleUpdate
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	mod, err := s.rating.Pipeline().UpdateModule(r.Context(), r.PathValue("name"), req)
	if errorsIsNotFound(err) {
		err = notFound("rating module", r.PathValue("name"))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, mod)
}

// quoteRequest is POST /api/v1/rating/quote.
type quoteRequest struct {
	Points []quotePointRequest `json:"points"`
}

type quotePointRequest struct {
	Service string            `json:"service"`
	Qty     any               `json:"qty"`
	Unit    string            `json:"unit"`
	Desc    map[string]string `json:"desc"`
}

// quoteResponse answers a quote: the points with their price, and the total.
type quoteResponse struct {
	Points []ratingbridge.QuotedPoint `json:"points"`
	Total  decimal.Decimal            `json:"total"`
}

func (s *Server) handleQuote(w http.ResponseWriter, r *http.Request) {
	body, err := readBodyText(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.quoteFast(w, r, body) {
		return
	}
	var req quoteRequest
	if err := decodeBytes([]byte(body), &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Points) == 0 {
		s.writeError(w, r, unprocessable("points", "points must hold at least one point"))
		return
	}
	points := make([]ratingbridge.QuotePoint, len(req.Points))
	for i, p := range req.Points {
		field := fmt.Sprintf("points[%d].qty", i)
		qty, err := decimalField(field, p.Qty, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if qty.IsNegative() {
			s.writeError(w, r, unprocessable(field, "%s must not be negative", field))
			return
		}
		points[i] = ratingbridge.QuotePoint{Service: p.Service, Qty: qty, Unit: p.Unit, Desc: p.Desc}
	}
	priced, total, err := s.rating.Pipeline().Quote(r.Context(), points)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, quoteResponse{Points: priced, Total: total})
}

// decimalField reads a decimal given as a JSON number or string.
func decimalField(field string, v any, required bool) (decimal.Decimal, error) {
	switch x := v.(type) {
	case nil:
		if required {
			return decimal.Decimal{}, unprocessable(field, "%s is required", field)
		}
		return decimal.Zero, nil
	case float64:
		return decimal.NewFromFloat(x), nil
	case string:
		d, err := decimal.NewFromString(strings.TrimSpace(x))
		if err != nil {
			return decimal.Decimal{}, unprocessable(field, "%s %s is not a decimal number", field, quote(string(x)))
		}
		return d, nil
	case json.Number:
		d, err := decimal.NewFromString(x.String())
		if err != nil {
			return decimal.Decimal{}, unprocessable(field, "%s %s is not a decimal number", field, quote(string(x)))
		}
		return d, nil
	}
	return decimal.Decimal{}, unprocessable(field, "%s must be a decimal number or string", field)
}

func (s *Server) handleProcess(w http.ResponseWriter, r *http.Request) {
	pass, err := s.rating.Process(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pass)
}

// summaryQuery reads begin, end, groupby, filters, offset, limit and, for
// admins, scope. A member only ever sees their own scope.
func summaryQuery(r *http.Request, actor *user.User) (store.SummaryQuery, error) {
	q := r.URL.Query()
	var sq store.SummaryQuery
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"begin", &sq.Begin}, {"end", &sq.End}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return sq, badRequest(f.name, "%s %s is not an RFC 3339 time", f.name, quote(v))
			}
			*f.dst = t.UTC()
		}
	}
	if !sq.Begin.IsZero() && !sq.End.IsZero() && sq.End.Before(sq.Begin) {
		return sq, badRequest("end", "end is before begin")
	}
	for _, v := range q["groupby"] {
		for _, g := range strings.Split(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				sq.GroupBy = append(sq.GroupBy, g)
			}
		}
	}
	for _, v := range q["filters"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			k, val, ok := strings.Cut(f, ":")
			if !ok || k == "" {
				return sq, badRequest("filters", "filter %s: want key:value", quote(f))
			}
			if sq.Filters == nil {
				sq.Filters = map[string]string{}
			}
			sq.Filters[k] = val
		}
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"offset", &sq.Offset}, {"limit", &sq.Limit}} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return sq, badRequest(f.name, "%s %s is not a non-negative integer", f.name, quote(v))
			}
			*f.dst = n
		}
	}
	sq.Scope = q.Get("scope")
	if !actor.IsAdmin() {
		sq.Scope = actor.ID
	}
	return sq, nil
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	q, err := summaryQuery(r, actorFrom(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum, err := s.st.Summarize(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) handleDataFrames(w http.ResponseWriter, r *http.Request) {
	q, err := summaryQuery(r, actorFrom(r.Context()))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	points, err := s.st.RatedPoints(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	frames := ratingbridge.FramesOf(points)
	if frames == nil {
		frames = []*dataframe.DataFrame{}
	}
	writeJSON(w, http.StatusOK, frames)
}
