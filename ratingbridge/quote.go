package ratingbridge

import (
	"context"
	"fmt"
	"slices"
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
	if err := CheckQuote(points); err != nil {
		return nil, decimal.Decimal{}, err
	}
	rating, err := p.LoadQuote(ctx)
	if err != nil {
		return nil, decimal.Decimal{}, err
	}
	rated, err := rating.Price(ctx, points)
	if err != nil {
		return nil, decimal.Decimal{}, err
	}
	out := make([]QuotedPoint, len(points))
	for i, q := range points {
		q.Unit = rated.Units[i]
		out[i] = QuotedPoint{QuotePoint: q, Price: rated.Prices[i]}
	}
	return out, rated.Total, nil
}

// LoadQuote loads the pipeline that prices quotes now, as Quote does
// after CheckQuote, for a caller that prepares its points with
// Rating.Fields before Rating.Price.
func (p *Pipeline) LoadQuote(ctx context.Context) (*Rating, error) {
	rating, err := p.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	return rating, nil
}

// CheckQuote returns the error Quote answers points with before it
// loads anything: too many of them, or one without a service.
func CheckQuote(points []QuotePoint) error {
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

// Rated is what the pipeline made of a quote's points, in the order
// given: each one's price and unit, and their total.
type Rated struct {
	Prices []decimal.Decimal
	Units  []string
	Total  decimal.Decimal
}

// Price prices points with the pipeline as loaded, as Pipeline.Quote
// does, without copying them into QuotedPoints.
func (r *Rating) Price(ctx context.Context, points []QuotePoint) (Rated, error) {
	if err := CheckQuote(points); err != nil {
		return Rated{}, err
	}
	// A quote groups by nothing: one empty groupby serves every point
	// (a point's maps are read-only). Each service's points go to its
	// slice of the frame in the order given, point i at index at[i]; a
	// run of points of one service (most quotes price one) looks its
	// slice up once.
	now := time.Now().UTC()
	f := dataframe.New(now, now)
	noGroupby := map[string]string{}
	counts := map[string]int{}
	for i, j := 0, 0; i < len(points); i = j {
		j = runEnd(points, i)
		counts[points[i].Service] += j - i
	}
	for svc, n := range counts {
		f.Usage[svc] = make([]dataframe.DataPoint, 0, n)
	}
	at := make([]int, len(points))
	for i, j := 0, 0; i < len(points); i = j {
		j = runEnd(points, i)
		svc := points[i].Service
		pts := f.Usage[svc]
		for k := i; k < j; k++ {
			q := &points[k]
			unit := q.Unit
			if unit == "" {
				unit = dataframe.DefaultUnit
			}
			at[k] = len(pts)
			pts = append(pts, dataframe.DataPoint{Unit: unit, Qty: q.Qty, Groupby: noGroupby, Metadata: q.Desc})
		}
		f.Usage[svc] = pts
	}
	if err := r.Rate(ctx, f); err != nil {
		return Rated{}, fmt.Errorf("quote: %w", err)
	}
	rated := Rated{Prices: make([]decimal.Decimal, len(points)), Units: make([]string, len(points))}
	var sum priceSum
	for i, j := 0, 0; i < len(points); i = j {
		j = runEnd(points, i)
		pts := f.Usage[points[i].Service]
		for k := i; k < j; k++ {
			pt := &pts[at[k]]
			rated.Prices[k], rated.Units[k] = pt.Price, pt.Unit
			sum.add(pt.Price)
		}
	}
	rated.Total = sum.total()
	return rated, nil
}

// runEnd is the end of the run of points of the service of points[i]
// that starts at i.
func runEnd(points []QuotePoint, i int) int {
	j := i + 1
	for j < len(points) && points[j].Service == points[i].Service {
		j++
	}
	return j
}

// priceSum adds prices up exactly, as Decimal.Add would one by one:
// coefficients of up to 18 digits in an int64 per exponent (a quote's
// prices have few exponents), any other price, or one that would
// overflow its sum, as a Decimal. The total's exponent is the least of
// the prices' and 0, as Decimal.Add's from decimal.Zero.
type priceSum struct {
	exps []int32
	sums []int64
	rest decimal.Decimal
}

// maxPriceExps bounds the exponents priceSum sums in int64.
const maxPriceExps = 8

func (s *priceSum) add(d decimal.Decimal) {
	if d.NumDigits() <= 18 {
		c, e := d.CoefficientInt64(), d.Exponent()
		i := slices.Index(s.exps, e)
		if i < 0 && len(s.exps) < maxPriceExps {
			s.exps, s.sums = append(s.exps, e), append(s.sums, 0)
			i = len(s.exps) - 1
		}
		if i >= 0 {
			if sum := s.sums[i] + c; (c >= 0) == (sum >= s.sums[i]) {
				s.sums[i] = sum
				return
			}
		}
	}
	s.rest = s.rest.Add(d)
}

func (s *priceSum) total() decimal.Decimal {
	t := s.rest
	for i, e := range s.exps {
		t = t.Add(decimal.New(s.sums[i], e))
	}
	return t
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
