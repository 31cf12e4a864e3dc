package ratingbridge

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/dataframe"
)

// QuotePoint is a hypothetical usage to price.
type QuotePoint struct {
	Service string            `json:"service"`
	Qty     decimal.Decimal   `json:"qty"`
	Unit    string            `json:"unit"`
	Desc    map[string]string `json:"desc"`
}

// QuotedPoint is a QuotePoint with its price.
type QuotedPoint struct {
	QuotePoint
	Price decimal.Decimal `json:"price"`
}

// MaxQuotePoints bounds one quote.
const MaxQuotePoints = 10000

// Quote prices points through the pipeline as it is configured now, as a
// rated period would be, and returns them in the order given with their
// total. Each point's desc is its metadata (no groupby).
func (p *Pipeline) Quote(ctx context.Context, points []QuotePoint) ([]QuotedPoint, decimal.Decimal, error) {
	rating, err := p.LoadQuote(ctx, points)
	if err != nil {
		return nil, decimal.Decimal{}, err
	}
	return rating.Quote(ctx, points)
}

// LoadQuote checks points as Quote does and loads the pipeline that prices
// them now, for a caller that prepares the points with Rating.Fields
// before Rating.Quote.
func (p *Pipeline) LoadQuote(ctx context.Context, points []QuotePoint) (*Rating, error) {
	if err := checkQuote(points); err != nil {
		return nil, err
	}
	rating, err := p.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	return rating, nil
}

func checkQuote(points []QuotePoint) error {
	if len(points) > MaxQuotePoints {
		return &FieldError{Field: "points", Reason: fmt.Sprintf("at most %d points", MaxQuotePoints)}
	}
	for i := range points {
		if points[i].Service == "" {
			return &FieldError{Field: fmt.Sprintf("points[%d].service", i), Reason: "required"}
		}
	}
	return nil
}

// Quote prices points with the pipeline as loaded (see Pipeline.Quote).
func (r *Rating) Quote(ctx context.Context, points []QuotePoint) ([]QuotedPoint, decimal.Decimal, error) {
	if err := checkQuote(points); err != nil {
		return nil, decimal.Decimal{}, err
	}
	type ref struct {
		service string
		index   int
	}
	now := time.Now().UTC()
	f := dataframe.New(now, now)
	perService := map[string]int{}
	for _, q := range points {
		perService[q.Service]++
	}
	for svc, n := range perService {
		f.Usage[svc] = make([]dataframe.DataPoint, 0, n)
	}
	// A quote groups by nothing: one empty groupby serves every point
	// (a point's maps are read-only).
	noGroupby := map[string]string{}
	refs := make([]ref, len(points))
	for i, q := range points {
		unit := q.Unit
		if unit == "" {
			unit = dataframe.DefaultUnit
		}
		refs[i] = ref{service: q.Service, index: len(f.Usage[q.Service])}
		f.Add(q.Service, dataframe.DataPoint{Unit: unit, Qty: q.Qty, Groupby: noGroupby, Metadata: q.Desc})
	}
	if err := r.Rate(ctx, f); err != nil {
		return nil, decimal.Decimal{}, fmt.Errorf("quote: %w", err)
	}
	out := make([]QuotedPoint, len(points))
	// Prices repeat (the pricer shares the Decimal of equal results): the
	// total adds each distinct price once, times its count, rather than
	// one big.Int sum a point. Decimal sums and products are exact, so
	// the total is the same either way.
	counts := map[decimal.Decimal]int64{}
	for i, q := range points {
		pt := f.Usage[refs[i].service][refs[i].index]
		q.Unit = pt.Unit
		out[i] = QuotedPoint{QuotePoint: q, Price: pt.Price}
		counts[pt.Price]++
	}
	total := decimal.Zero
	for price, n := range counts {
		total = total.Add(price.Mul(decimal.NewFromInt(n)))
	}
	return out, total, nil
}

// EstimateMachine describes a machine to be built, for a cost estimate.
type EstimateMachine struct {
	Provider string `json:"provider"`
	Size     string `json:"size"`
	Region   string `json:"region"`
	Image    string `json:"image"`
	Label    string `json:"label"`
}

// HoursPerMonth is the month a monthly estimate is made of (365 × 24 / 12).
const HoursPerMonth = 730

// Monthly is an hourly price times HoursPerMonth.
func Monthly(hourly decimal.Decimal) decimal.Decimal {
	return hourly.Mul(decimal.NewFromInt(HoursPerMonth))
}

// EstimateHourly prices one running hour of every machine, as the collector
// would report it (service instance, unit hour, desc provider, size, region,
// image, label, empty values left out), and returns the sum.
func (p *Pipeline) EstimateHourly(ctx context.Context, machines []EstimateMachine) (decimal.Decimal, error) {
	points := make([]QuotePoint, len(machines))
	one := decimal.NewFromInt(1)
	for i, m := range machines {
		desc := map[string]string{}
		for k, v := range map[string]string{"provider": m.Provider, "size": m.Size, "region": m.Region, "image": m.Image, "label": m.Label} {
			if v != "" {
				desc[k] = v
			}
		}
		points[i] = QuotePoint{Service: ServiceInstance, Qty: one, Unit: UnitHour, Desc: desc}
	}
	_, total, err := p.Quote(ctx, points)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("estimate: %w", err)
	}
	return total, nil
}
