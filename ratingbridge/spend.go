package ratingbridge

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/store"
)

// Spending: what a scope has cost since a moment, as the rated periods say
// plus the time not rated yet priced now by the same pipeline, and what
// its running machines cost per hour. Budgets and the summary agree on it
// to the cent because the rated part is the summary's own total.

// Summarizer totals rated points (store.Rated).
type Summarizer interface {
	Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error)
}

// SpendQuery asks what an owner's machines (or one stack's of them) cost
// from Begin to Now.
type SpendQuery struct {
	Owner   string // the rating scope: the machines' owner
	StackID string // only this stack's machines when set
	Begin   time.Time
	Now     time.Time
}

// Spend is what a SpendQuery costs: Rated is the summary total of the
// rated periods in [Begin, RatedThrough); Live prices the running time
// from there to Now; Hourly is what the machines running at Now cost per
// hour.
type Spend struct {
	Rated        decimal.Decimal `json:"rated"`
	Live         decimal.Decimal `json:"live"`
	Total        decimal.Decimal `json:"total"`
	Hourly       decimal.Decimal `json:"hourly"`
	RatedThrough time.Time       `json:"rated_through"`
}

// maxLivePeriods bounds the unrated periods one spend prices.
const maxLivePeriods = 10_000

// SummaryFilter is the summary query of a spend's rated part.
func (q SpendQuery) SummaryFilter(through time.Time) store.SummaryQuery {
	sq := store.SummaryQuery{Scope: q.Owner, Begin: q.Begin, End: through}
	if q.StackID != "" {
		sq.Filters = map[string]string{KeyStackID: q.StackID}
	}
	return sq
}

// SummaryTotal adds the rate column of a summary's rows.
func SummaryTotal(s *store.Summary) (decimal.Decimal, error) {
	total := decimal.Zero
	for _, row := range s.Results {
		if len(row) < 4 {
			continue
		}
		v, _ := row[3].(string)
		if v == "" {
			continue
		}
		d, err := decimal.NewFromString(v)
		if err != nil {
			return decimal.Zero, fmt.Errorf("summary rate %q: %w", v, err)
		}
		total = total.Add(d)
	}
	return total, nil
}

// Spend prices q: the rated part from the summary, the live part and the
// hourly price of running machines from the collector and the pipeline.
func (p *Processor) Spend(ctx context.Context, sum Summarizer, q SpendQuery) (Spend, error) {
	period := p.period()
	now := q.Now.UTC()
	from := q.Begin.UTC()
	// Rating resumes where the scope's state is, or for a scope never
	// rated at the period of its first state record.
	resume, ok, err := p.start(ctx, p.Collector.scope(q.Owner), now)
	if err != nil {
		return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
	}
	if !ok {
		resume = now // no history: nothing ran
	}
	if resume.After(from) {
		from = resume
	}
	if from.After(now) {
		from = now
	}
	out := Spend{RatedThrough: from, Live: decimal.Zero, Hourly: decimal.Zero}
	s, err := sum.Summarize(ctx, q.SummaryFilter(from))
	if err != nil {
		return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
	}
	if out.Rated, err = SummaryTotal(s); err != nil {
		return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
	}
	// Whole periods not rated yet, then the current one up to now.
	var frames []*dataframe.DataFrame
	cur := PeriodStart(now, period)
	if aligned := PeriodStart(from, period); !aligned.Equal(from) && from.Before(cur) {
		f, err := p.Collector.Collect(ctx, q.Owner, from, aligned.Add(period))
		if err != nil {
			return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
		}
		frames = append(frames, f)
		from = aligned.Add(period)
	}
	if n := int(cur.Sub(from) / period); n > 0 {
		if n > maxLivePeriods {
			return Spend{}, fmt.Errorf("spend of %s: %d periods are not rated yet (at most %d priced live); rating is behind", q.Owner, n, maxLivePeriods)
		}
		fs, err := p.Collector.CollectPeriods(ctx, q.Owner, from, period, n)
		if err != nil {
			return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
		}
		frames = append(frames, fs...)
		from = cur
	}
	if now.After(from) {
		f, err := p.Collector.Collect(ctx, q.Owner, from, now)
		if err != nil {
			return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
		}
		frames = append(frames, f)
	}
	for _, f := range frames {
		keepStack(f, q.StackID)
		if f.Len() == 0 {
			continue
		}
		pb := PeriodStart(f.Start, period)
		rating, err := p.Pipeline.LoadPeriod(ctx, pb, pb.Add(period))
		if err != nil {
			return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
		}
		if err := rating.Rate(ctx, f); err != nil {
			return Spend{}, fmt.Errorf("spend of %s: %w", q.Owner, err)
		}
		out.Live = out.Live.Add(f.Total())
	}
	if out.Hourly, err = p.hourly(ctx, q, cur, period); err != nil {
		return Spend{}, err
	}
	out.Total = out.Rated.Add(out.Live)
	return out, nil
}

// keepStack drops the points of machines of other stacks.
func keepStack(f *dataframe.DataFrame, stackID string) {
	if stackID == "" {
		return
	}
	for svc, pts := range f.Usage {
		kept := pts[:0:0]
		for _, pt := range pts {
			if pt.Groupby[KeyStackID] == stackID {
				kept = append(kept, pt)
			}
		}
		f.Usage[svc] = kept
	}
}

// hourly prices one hour of every machine of q running now, as the
// collector describes it, with the rules of the current period.
func (p *Processor) hourly(ctx context.Context, q SpendQuery, cur time.Time, period time.Duration) (decimal.Decimal, error) {
	ms, err := p.Collector.Machines.ListMachines(ctx, store.MachineFilter{OwnerID: q.Owner, StackID: q.StackID})
	if err != nil {
		return decimal.Zero, fmt.Errorf("spend of %s: list machines: %w", q.Owner, err)
	}
	f := dataframe.New(cur, cur.Add(time.Hour))
	one := decimal.NewFromInt(1)
	for _, m := range ms {
		if m.State != machinestate.Running {
			continue
		}
		d := describe(q.Owner, m.ID, m)
		f.Add(ServiceInstance, dataframe.DataPoint{Unit: UnitHour, Qty: one, Groupby: d.groupby, Metadata: d.metadata})
	}
	if f.Len() == 0 {
		return decimal.Zero, nil
	}
	rating, err := p.Pipeline.LoadPeriod(ctx, cur, cur.Add(period))
	if err != nil {
		return decimal.Zero, fmt.Errorf("spend of %s: %w", q.Owner, err)
	}
	if err := rating.Rate(ctx, f); err != nil {
		return decimal.Zero, fmt.Errorf("spend of %s: %w", q.Owner, err)
	}
	return f.Total(), nil
}
