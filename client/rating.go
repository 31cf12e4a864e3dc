package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The rating bridge's part of the API: modules, the hashmap module's rules,
// quotes, rating passes, summaries, dataframes and reports. Quantities,
// costs and prices are decimal.Decimal, which the API speaks as strings.

// RatingModule is a rating module and its setting.
type RatingModule struct {
	Name        string `json:"module_id"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	Priority    int    `json:"priority"`
	HotConfig   bool   `json:"hot_config"`
}

// ModuleUpdate is PUT /api/v1/rating/modules/{name}: nil fields stay as
// they are.
type ModuleUpdate struct {
	Enabled  *bool `json:"enabled,omitempty"`
	Priority *int  `json:"priority,omitempty"`
}

// HashmapService is a rated service ("instance").
type HashmapService struct {
	ID   string `json:"service_id"`
	Name string `json:"name"`
}

// HashmapField is a field of a service's points ("size").
type HashmapField struct {
	ID        string `json:"field_id"`
	ServiceID string `json:"service_id"`
	Name      string `json:"name"`
}

// HashmapGroup groups rules that price together.
type HashmapGroup struct {
	ID   string `json:"group_id"`
	Name string `json:"name"`
}

// The hashmap rule cost types.
const (
	CostFlat = "flat"
	CostRate = "rate"
)

// HashmapMapping is a service mapping (ServiceID set, no Value) or a field
// mapping (FieldID and Value set).
type HashmapMapping struct {
	ID        string          `json:"mapping_id"`
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Value     string          `json:"value,omitempty"`
	Type      string          `json:"type"`
	Cost      decimal.Decimal `json:"cost"`
	Start     *time.Time      `json:"start,omitempty"`
	End       *time.Time      `json:"end,omitempty"`
}

// MappingRequest creates or replaces a mapping; Type "" is flat.
type MappingRequest struct {
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Value     string          `json:"value,omitempty"`
	Type      string          `json:"type,omitempty"`
	Cost      decimal.Decimal `json:"cost"`
	Start     *time.Time      `json:"start,omitempty"`
	End       *time.Time      `json:"end,omitempty"`
}

// HashmapThreshold is a service threshold (on qty) or a field threshold (on
// a numeric field's value).
type HashmapThreshold struct {
	ID        string          `json:"threshold_id"`
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Level     decimal.Decimal `json:"level"`
	Type      string          `json:"type"`
	Cost      decimal.Decimal `json:"cost"`
	Start     *time.Time      `json:"start,omitempty"`
	End       *time.Time      `json:"end,omitempty"`
}

// ThresholdRequest creates or replaces a threshold; Type "" is flat.
type ThresholdRequest struct {
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Level     decimal.Decimal `json:"level"`
	Type      string          `json:"type,omitempty"`
	Cost      decimal.Decimal `json:"cost"`
	Start     *time.Time      `json:"start,omitempty"`
	End       *time.Time      `json:"end,omitempty"`
}

// NameRequest creates a hashmap service or group.
type NameRequest struct {
	Name string `json:"name"`
}

// FieldRequest creates a hashmap field.
type FieldRequest struct {
	ServiceID string `json:"service_id"`
	Name      string `json:"name"`
}

// RuleFilter narrows a list of mappings or thresholds (fields: ServiceID
// only); empty ids do not filter.
type RuleFilter struct {
	ServiceID string
	FieldID   string
	GroupID   string
}

func (f RuleFilter) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"service_id": f.ServiceID, "field_id": f.FieldID, "group_id": f.GroupID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// QuotePoint is a hypothetical usage to price.
type QuotePoint struct {
	Service string            `json:"service"`
	Qty     decimal.Decimal   `json:"qty"`
	Unit    string            `json:"unit,omitempty"`
	Desc    map[string]string `json:"desc,omitempty"`
}

// QuoteRequest is POST /api/v1/rating/quote.
type QuoteRequest struct {
	Points []QuotePoint `json:"points"`
}

// QuotedPoint is a point with its price.
type QuotedPoint struct {
	QuotePoint
	Price decimal.Decimal `json:"price"`
}

// Quote answers a quote: the points in the order given, and their total.
type Quote struct {
	Points []QuotedPoint   `json:"points"`
	Total  decimal.Decimal `json:"total"`
}

// RatingPass is what one rating pass rated.
type RatingPass struct {
	Scopes  int `json:"scopes"`
	Periods int `json:"periods"`
	Points  int `json:"points"`
}

// SummaryQuery selects rated points: a time range, groupby keys, key:value
// filters, a page (Offset, Limit; 0 is no limit) and, for admins, a scope.
type SummaryQuery struct {
	Begin, End time.Time
	GroupBy    []string
	Filters    map[string]string
	Offset     int
	Limit      int
	Scope      string
}

func (q SummaryQuery) values() url.Values {
	v := url.Values{}
	if !q.Begin.IsZero() {
		v.Set("begin", q.Begin.UTC().Format(time.RFC3339))
	}
	if !q.End.IsZero() {
		v.Set("end", q.End.UTC().Format(time.RFC3339))
	}
	if len(q.GroupBy) > 0 {
		v.Set("groupby", strings.Join(q.GroupBy, ","))
	}
	for k, val := range q.Filters {
		v.Add("filters", k+":"+val)
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Scope != "" {
		v.Set("scope", q.Scope)
	}
	return v
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// Summary is GET /api/v1/rating/summary: Total rows in all pages, the
// Columns (begin, end, qty, rate, then the groupby keys) and one page of
// Results. Every cell is a string (times RFC 3339, qty and rate decimal);
// a groupby key a point lacks is nil.
type Summary struct {
	Total   int         `json:"total"`
	Columns []string    `json:"columns"`
	Results [][]*string `json:"results"`
}

// DataFrame is one scope's rated usage in one period, in CloudKitty's v2
// shape.
type DataFrame struct {
	Period Period                 `json:"period"`
	Usage  map[string][]DataPoint `json:"usage"`
}

// Period is a [Begin, End) range.
type Period struct {
	Begin time.Time `json:"begin"`
	End   time.Time `json:"end"`
}

// DataPoint is one rated point.
type DataPoint struct {
	Vol      Volume            `json:"vol"`
	Rating   PointRating       `json:"rating"`
	Groupby  map[string]string `json:"groupby"`
	Metadata map[string]string `json:"metadata"`
}

// Volume is a point's quantity and unit.
type Volume struct {
	Unit string          `json:"unit"`
	Qty  decimal.Decimal `json:"qty"`
}

// PointRating is a point's price.
type PointRating struct {
	Price decimal.Decimal `json:"price"`
}

// Report is a file the writer pipeline made.
type Report struct {
	Name       string    `json:"name"`
	Scope      string    `json:"scope"`
	Month      string    `json:"month"`
	Format     string    `json:"format"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
}

const hashmapPath = "/api/v1/rating/modules/hashmap/"

// RatingModules lists the rating modules.
func (c *Client) RatingModules(ctx context.Context) ([]RatingModule, error) {
	return list[RatingModule](ctx, c, "/api/v1/rating/modules")
}

// RatingModule shows one rating module.
func (c *Client) RatingModule(ctx context.Context, name string) (*RatingModule, error) {
	return call[RatingModule](ctx, c, http.MethodGet, "/api/v1/rating/modules/"+url.PathEscape(name), nil)
}

// UpdateRatingModule changes a module's enabled flag or priority (admin);
// what u leaves nil stays as it is.
func (c *Client) UpdateRatingModule(ctx context.Context, name string, u ModuleUpdate) (*RatingModule, error) {
	return call[RatingModule](ctx, c, http.MethodPut, "/api/v1/rating/modules/"+url.PathEscape(name), u)
}

// HashmapServices lists the hashmap services.
func (c *Client) HashmapServices(ctx context.Context) ([]HashmapService, error) {
	return list[HashmapService](ctx, c, hashmapPath+"services")
}

// HashmapService shows one hashmap service.
func (c *Client) HashmapService(ctx context.Context, id string) (*HashmapService, error) {
	return call[HashmapService](ctx, c, http.MethodGet, hashmapPath+"services/"+url.PathEscape(id), nil)
}

// CreateHashmapService creates a hashmap service (admin).
func (c *Client) CreateHashmapService(ctx context.Context, r NameRequest) (*HashmapService, error) {
	return call[HashmapService](ctx, c, http.MethodPost, hashmapPath+"services", r)
}

// DeleteHashmapService deletes a service with its fields, mappings and
// thresholds (admin).
func (c *Client) DeleteHashmapService(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, hashmapPath+"services/"+url.PathEscape(id), nil, nil)
}

// HashmapFields lists the fields of a service (all with serviceID "").
func (c *Client) HashmapFields(ctx context.Context, serviceID string) ([]HashmapField, error) {
	return list[HashmapField](ctx, c, hashmapPath+"fields"+RuleFilter{ServiceID: serviceID}.query())
}

// HashmapField shows one hashmap field.
func (c *Client) HashmapField(ctx context.Context, id string) (*HashmapField, error) {
	return call[HashmapField](ctx, c, http.MethodGet, hashmapPath+"fields/"+url.PathEscape(id), nil)
}

// CreateHashmapField creates a field of a service (admin).
func (c *Client) CreateHashmapField(ctx context.Context, r FieldRequest) (*HashmapField, error) {
	return call[HashmapField](ctx, c, http.MethodPost, hashmapPath+"fields", r)
}

// DeleteHashmapField deletes a field with its rules (admin).
func (c *Client) DeleteHashmapField(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, hashmapPath+"fields/"+url.PathEscape(id), nil, nil)
}

// HashmapGroups lists the hashmap groups.
func (c *Client) HashmapGroups(ctx context.Context) ([]HashmapGroup, error) {
	return list[HashmapGroup](ctx, c, hashmapPath+"groups")
}

// HashmapGroup shows one hashmap group.
func (c *Client) HashmapGroup(ctx context.Context, id string) (*HashmapGroup, error) {
	return call[HashmapGroup](ctx, c, http.MethodGet, hashmapPath+"groups/"+url.PathEscape(id), nil)
}

// CreateHashmapGroup creates a hashmap group (admin).
func (c *Client) CreateHashmapGroup(ctx context.Context, r NameRequest) (*HashmapGroup, error) {
	return call[HashmapGroup](ctx, c, http.MethodPost, hashmapPath+"groups", r)
}

// DeleteHashmapGroup deletes a group; its rules become ungrouped (admin).
func (c *Client) DeleteHashmapGroup(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, hashmapPath+"groups/"+url.PathEscape(id), nil, nil)
}

// HashmapMappings lists the mappings f selects.
func (c *Client) HashmapMappings(ctx context.Context, f RuleFilter) ([]HashmapMapping, error) {
	return list[HashmapMapping](ctx, c, hashmapPath+"mappings"+f.query())
}

// HashmapMapping shows one mapping.
func (c *Client) HashmapMapping(ctx context.Context, id string) (*HashmapMapping, error) {
	return call[HashmapMapping](ctx, c, http.MethodGet, hashmapPath+"mappings/"+url.PathEscape(id), nil)
}

// CreateHashmapMapping creates a mapping (admin).
func (c *Client) CreateHashmapMapping(ctx context.Context, r MappingRequest) (*HashmapMapping, error) {
	return call[HashmapMapping](ctx, c, http.MethodPost, hashmapPath+"mappings", r)
}

// UpdateHashmapMapping replaces a mapping (admin).
func (c *Client) UpdateHashmapMapping(ctx context.Context, id string, r MappingRequest) (*HashmapMapping, error) {
	return call[HashmapMapping](ctx, c, http.MethodPut, hashmapPath+"mappings/"+url.PathEscape(id), r)
}

// DeleteHashmapMapping deletes a mapping (admin).
func (c *Client) DeleteHashmapMapping(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, hashmapPath+"mappings/"+url.PathEscape(id), nil, nil)
}

// HashmapThresholds lists the thresholds f selects.
func (c *Client) HashmapThresholds(ctx context.Context, f RuleFilter) ([]HashmapThreshold, error) {
	return list[HashmapThreshold](ctx, c, hashmapPath+"thresholds"+f.query())
}

// HashmapThreshold shows one threshold.
func (c *Client) HashmapThreshold(ctx context.Context, id string) (*HashmapThreshold, error) {
	return call[HashmapThreshold](ctx, c, http.MethodGet, hashmapPath+"thresholds/"+url.PathEscape(id), nil)
}

// CreateHashmapThreshold creates a threshold (admin).
func (c *Client) CreateHashmapThreshold(ctx context.Context, r ThresholdRequest) (*HashmapThreshold, error) {
	return call[HashmapThreshold](ctx, c, http.MethodPost, hashmapPath+"thresholds", r)
}

// UpdateHashmapThreshold replaces a threshold (admin).
func (c *Client) UpdateHashmapThreshold(ctx context.Context, id string, r ThresholdRequest) (*HashmapThreshold, error) {
	return call[HashmapThreshold](ctx, c, http.MethodPut, hashmapPath+"thresholds/"+url.PathEscape(id), r)
}

// DeleteHashmapThreshold deletes a threshold (admin).
func (c *Client) DeleteHashmapThreshold(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, hashmapPath+"thresholds/"+url.PathEscape(id), nil, nil)
}

// Quote prices points with the rating pipeline as it is configured now.
func (c *Client) Quote(ctx context.Context, r QuoteRequest) (*Quote, error) {
	return call[Quote](ctx, c, http.MethodPost, "/api/v1/rating/quote", r)
}

// ProcessRating rates every closed period now and writes the reports
// (admin).
func (c *Client) ProcessRating(ctx context.Context) (*RatingPass, error) {
	return call[RatingPass](ctx, c, http.MethodPost, "/api/v1/rating/process", nil)
}

// Summary sums rated points, grouped and paged as q says.
func (c *Client) Summary(ctx context.Context, q SummaryQuery) (*Summary, error) {
	return call[Summary](ctx, c, http.MethodGet, withQuery("/api/v1/rating/summary", q.values()), nil)
}

// DataFrames lists the rated frames q selects (its time range, filters and
// scope; groupby and paging do not apply).
func (c *Client) DataFrames(ctx context.Context, q SummaryQuery) ([]DataFrame, error) {
	q.GroupBy, q.Offset, q.Limit = nil, 0, 0
	return list[DataFrame](ctx, c, withQuery("/api/v1/rating/dataframes", q.values()))
}

// Reports lists the report files the caller may see.
func (c *Client) Reports(ctx context.Context) ([]Report, error) {
	return list[Report](ctx, c, "/api/v1/reports")
}

// Report copies one report file to w.
func (c *Client) Report(ctx context.Context, name string, w io.Writer) error {
	return c.Do(ctx, http.MethodGet, "/api/v1/reports/"+url.PathEscape(name), nil, w)
}
