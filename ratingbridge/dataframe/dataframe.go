// Package dataframe holds the rating bridge's data model, CloudKitty's v2
// DataFrame: for one period, the usage of each service as data points that
// carry a quantity, a unit, a price and the descriptive fields rating rules
// match on. Points encode to JSON in CloudKitty's v2 form ({vol, rating,
// groupby, metadata}) and in its legacy form ({vol, rating, desc}); money
// and quantities are decimal strings.
package dataframe

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// DefaultUnit is the unit a point decoded without one gets, as in CloudKitty.
const DefaultUnit = "undefined"

// DataPoint is one measured quantity of a service in a period. Groupby holds
// the keys usage is grouped by (machine_id, owner, ...), Metadata the
// descriptive fields (size, region, ...). Both maps are treated as read-only
// once the point is built: the collector may share them between the frames
// of one collection.
type DataPoint struct {
	Unit     string
	Qty      decimal.Decimal
	Price    decimal.Decimal
	Groupby  map[string]string
	Metadata map[string]string
}

// Desc returns a new map of the point's descriptive fields: metadata merged
// with groupby, groupby winning on a key present in both.
func (p *DataPoint) Desc() map[string]string {
	out := make(map[string]string, len(p.Groupby)+len(p.Metadata))
	maps.Copy(out, p.Metadata)
	maps.Copy(out, p.Groupby)
	return out
}

// Field looks up one field of Desc without building it: groupby first, then
// metadata.
func (p *DataPoint) Field(name string) (string, bool) {
	if v, ok := p.Groupby[name]; ok {
		return v, true
	}
	v, ok := p.Metadata[name]
	return v, ok
}

// vol and rating are the shared parts of both JSON forms.
type vol struct {
	Unit string           `json:"unit"`
	Qty  *decimal.Decimal `json:"qty"`
}

type rating struct {
	Price *decimal.Decimal `json:"price"`
}

type pointJSON struct {
	Vol      *vol              `json:"vol"`
	Rating   *rating           `json:"rating,omitempty"`
	Groupby  map[string]string `json:"groupby,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Desc     map[string]string `json:"desc,omitempty"`
}

func emptyIfNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// v2 is the v2 JSON shape; groupby and metadata are always present.
type v2 struct {
	Vol      vol               `json:"vol"`
	Rating   rating            `json:"rating"`
	Groupby  map[string]string `json:"groupby"`
	Metadata map[string]string `json:"metadata"`
}

// legacy is the v1 JSON shape.
type legacy struct {
	Vol    vol               `json:"vol"`
	Rating rating            `json:"rating"`
	Desc   map[string]string `json:"desc"`
}

// MarshalJSON encodes the point in the v2 form:
// {"vol":{"unit","qty"},"rating":{"price"},"groupby":{},"metadata":{}}.
func (p DataPoint) MarshalJSON() ([]byte, error) {
	qty, price := p.Qty, p.Price
	return json.Marshal(v2{
		Vol:      vol{Unit: p.Unit, Qty: &qty},
		Rating:   rating{Price: &price},
		Groupby:  emptyIfNil(p.Groupby),
		Metadata: emptyIfNil(p.Metadata),
	})
}

// MarshalLegacyJSON encodes the point in the legacy form:
// {"vol":{"unit","qty"},"rating":{"price"},"desc":{}}.
func (p DataPoint) MarshalLegacyJSON() ([]byte, error) {
	return json.Marshal(p.legacy())
}

func (p DataPoint) legacy() legacy {
	qty, price := p.Qty, p.Price
	return legacy{Vol: vol{Unit: p.Unit, Qty: &qty}, Rating: rating{Price: &price}, Desc: p.Desc()}
}

// UnmarshalJSON decodes either form. A legacy point's desc becomes its
// groupby, as CloudKitty does; a missing rating or price is zero; a missing
// unit is DefaultUnit; vol and vol.qty are required.
func (p *DataPoint) UnmarshalJSON(b []byte) error {
	var in pointJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("decode data point: %w", err)
	}
	if in.Vol == nil {
		return errors.New("decode data point: vol: required")
	}
	if in.Vol.Qty == nil {
		return errors.New("decode data point: vol.qty: required")
	}
	out := DataPoint{Unit: in.Vol.Unit, Qty: *in.Vol.Qty, Groupby: in.Groupby, Metadata: in.Metadata}
	if out.Unit == "" {
		out.Unit = DefaultUnit
	}
	if in.Rating != nil && in.Rating.Price != nil {
		out.Price = *in.Rating.Price
	}
	if in.Desc != nil && in.Groupby == nil && in.Metadata == nil {
		out.Groupby = in.Desc
	}
	if out.Groupby == nil {
		out.Groupby = map[string]string{}
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	*p = out
	return nil
}

// DataFrame is the usage of one scope in the period [Start, End): for each
// service name, its points.
type DataFrame struct {
	Start time.Time
	End   time.Time
	Usage map[string][]DataPoint
}

// New returns an empty frame for [start, end).
func New(start, end time.Time) *DataFrame {
	return &DataFrame{Start: start, End: end, Usage: map[string][]DataPoint{}}
}

// Add appends points to a service.
func (f *DataFrame) Add(service string, points ...DataPoint) {
	if f.Usage == nil {
		f.Usage = map[string][]DataPoint{}
	}
	f.Usage[service] = append(f.Usage[service], points...)
}

// Services returns the frame's service names, sorted.
func (f *DataFrame) Services() []string {
	return slices.Sorted(maps.Keys(f.Usage))
}

// Len is the number of points of every service.
func (f *DataFrame) Len() int {
	n := 0
	for _, pts := range f.Usage {
		n += len(pts)
	}
	return n
}

// Total is the sum of every point's price.
func (f *DataFrame) Total() decimal.Decimal {
	total := decimal.Zero
	for _, s := range f.Services() {
		for i := range f.Usage[s] {
			total = total.Add(f.Usage[s][i].Price)
		}
	}
	return total
}

type period struct {
	Begin time.Time `json:"begin"`
	End   time.Time `json:"end"`
}

type frameJSON struct {
	Period *period                      `json:"period"`
	Usage  map[string][]json.RawMessage `json:"usage"`
}

// MarshalJSON encodes the frame in the v2 form:
// {"period":{"begin","end"},"usage":{"service":[v2 point, ...]}} with times
// in RFC 3339 UTC.
func (f DataFrame) MarshalJSON() ([]byte, error) {
	return f.marshal(func(p DataPoint) ([]byte, error) { return p.MarshalJSON() })
}

// MarshalLegacyJSON encodes the frame with points in the legacy form.
func (f DataFrame) MarshalLegacyJSON() ([]byte, error) {
	return f.marshal(func(p DataPoint) ([]byte, error) { return p.MarshalLegacyJSON() })
}

func (f DataFrame) marshal(point func(DataPoint) ([]byte, error)) ([]byte, error) {
	out := frameJSON{
		Period: &period{Begin: f.Start.UTC(), End: f.End.UTC()},
		Usage:  make(map[string][]json.RawMessage, len(f.Usage)),
	}
	for s, pts := range f.Usage {
		enc := make([]json.RawMessage, len(pts))
		for i, p := range pts {
			b, err := point(p)
			if err != nil {
				return nil, fmt.Errorf("encode %s point %d: %w", s, i, err)
			}
			enc[i] = b
		}
		out.Usage[s] = enc
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes a frame whose points are in either form.
func (f *DataFrame) UnmarshalJSON(b []byte) error {
	var in struct {
		Period *period                `json:"period"`
		Usage  map[string][]DataPoint `json:"usage"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("decode data frame: %w", err)
	}
	if in.Period == nil {
		return errors.New("decode data frame: period: required")
	}
	if in.Usage == nil {
		return errors.New("decode data frame: usage: required")
	}
	*f = DataFrame{Start: in.Period.Begin.UTC(), End: in.Period.End.UTC(), Usage: in.Usage}
	return nil
}
