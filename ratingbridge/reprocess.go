package ratingbridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/store"
)

// Re-rating: closed periods priced again with today's rules (each rule as
// its validity dates say for the period), CloudKitty's reprocessing, with a
// dry run that says first how much money would move.

// PeriodDelta is how one rated period of one scope moves.
type PeriodDelta struct {
	Scope string          `json:"scope"`
	Begin time.Time       `json:"begin"`
	End   time.Time       `json:"end"`
	Old   decimal.Decimal `json:"old"`
	New   decimal.Decimal `json:"new"`
	Delta decimal.Decimal `json:"delta"`
}

// Reprocessed is what a re-rating moved (or, dry, would move): every
// period whose total changes, and the sum of the changes.
type Reprocessed struct {
	DryRun  bool            `json:"dry_run"`
	Periods []PeriodDelta   `json:"periods"`
	Delta   decimal.Decimal `json:"delta"`
	// Scanned counts the rated periods read.
	Scanned int `json:"scanned"`
}

// RepriceStore is what a re-rating reads and writes.
type RepriceStore interface {
	RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error)
	ReplaceRatedPeriod(ctx context.Context, p *store.RatedPeriod) error
}

// MaxReprocessPeriods bounds the periods one re-rating reads.
const MaxReprocessPeriods = 100_000

// ErrTooManyPeriods: a re-rating window holds more periods than one
// request may re-rate.
var ErrTooManyPeriods = errors.New("too many periods")

// Reprice prices points of the period [begin, end) again with the rules
// valid in it, and returns them with their new prices, in the same order.
func (p *Pipeline) Reprice(ctx context.Context, begin, end time.Time, points []store.RatedPoint) ([]store.RatedPoint, error) {
	rating, err := p.LoadPeriod(ctx, begin, end)
	if err != nil {
		return nil, err
	}
	f := dataframe.New(begin, end)
	type ref struct {
		service string
		index   int
	}
	refs := make([]ref, len(points))
	for i, pt := range points {
		refs[i] = ref{pt.Service, len(f.Usage[pt.Service])}
		f.Add(pt.Service, dataframe.DataPoint{Unit: pt.Unit, Qty: pt.Qty, Groupby: pt.Groupby, Metadata: pt.Metadata})
	}
	if err := rating.Rate(ctx, f); err != nil {
		return nil, err
	}
	out := make([]store.RatedPoint, len(points))
	for i, pt := range points {
		pt.Price = f.Usage[refs[i].service][refs[i].index].Price
		out[i] = pt
	}
	return out, nil
}

// Reprocess re-rates the rated periods of scope that begin in [begin,
// end): each period's points priced again; when not dry, a period whose
// total changes is replaced. It returns the periods that change.
func (p *Pipeline) Reprocess(ctx context.Context, st RepriceStore, scope string, begin, end time.Time, dryRun bool) (*Reprocessed, error) {
	out := &Reprocessed{DryRun: dryRun, Periods: []PeriodDelta{}, Delta: decimal.Zero}
	const page = 5000
	var cur []store.RatedPoint
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		pts := cur
		cur = nil
		out.Scanned++
		if out.Scanned > MaxReprocessPeriods {
			return fmt.Errorf("reprocess %s: more than %d periods in the window; re-rate a shorter one: %w", scope, MaxReprocessPeriods, ErrTooManyPeriods)
		}
		pb, pe := pts[0].Begin.UTC(), pts[0].End.UTC()
		priced, err := p.Reprice(ctx, pb, pe, pts)
		if err != nil {
			return fmt.Errorf("reprocess %s period %s: %w", scope, pb.Format(time.RFC3339), err)
		}
		d := PeriodDelta{Scope: scope, Begin: pb, End: pe, Old: decimal.Zero, New: decimal.Zero}
		for i := range pts {
			d.Old = d.Old.Add(pts[i].Price)
			d.New = d.New.Add(priced[i].Price)
		}
		d.Delta = d.New.Sub(d.Old)
		if d.Delta.IsZero() {
			return nil
		}
		if !dryRun {
			if err := st.ReplaceRatedPeriod(ctx, &store.RatedPeriod{Scope: scope, Begin: pb, End: pe, Points: priced}); err != nil {
				return fmt.Errorf("reprocess %s: %w", scope, err)
			}
		}
		out.Periods = append(out.Periods, d)
		out.Delta = out.Delta.Add(d.Delta)
		return nil
	}
	// Points come ordered by begin; a period's points are contiguous. The
	// pages are read before any period is replaced, window by window: a
	// replaced period keeps its points' count, so offsets stay right.
	var all []store.RatedPoint
	for offset := 0; ; offset += page {
		got, err := st.RatedPoints(ctx, store.SummaryQuery{Scope: scope, Begin: begin, End: time.Time{}, Offset: offset, Limit: page})
		if err != nil {
			return nil, fmt.Errorf("reprocess %s: %w", scope, err)
		}
		done := len(got) < page
		for _, pt := range got {
			if !pt.Begin.Before(end) {
				done = true
				break
			}
			all = append(all, pt)
		}
		if done {
			break
		}
		if len(all) > 10*MaxReprocessPeriods {
			return nil, fmt.Errorf("reprocess %s: more than %d points in the window; re-rate a shorter one: %w", scope, 10*MaxReprocessPeriods, ErrTooManyPeriods)
		}
	}
	for _, pt := range all {
		if len(cur) > 0 && (!pt.Begin.Equal(cur[0].Begin) || !pt.End.Equal(cur[0].End)) {
			if err := flush(); err != nil {
				return out, err
			}
		}
		cur = append(cur, pt)
	}
	if err := flush(); err != nil {
		return out, err
	}
	return out, nil
}
