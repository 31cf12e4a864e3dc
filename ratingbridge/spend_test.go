package ratingbridge

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// pointsSummarizer is Summarize over RatedPoints: the ungrouped row.
type pointsSummarizer struct {
	src interface {
		RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error)
	}
}

func (s pointsSummarizer) Summarize(ctx context.Context, q store.SummaryQuery) (*store.Summary, error) {
	pts, err := s.src.RatedPoints(ctx, q)
	if err != nil {
		return nil, err
	}
	total := decimal.Zero
	for _, p := range pts {
		total = total.Add(p.Price)
	}
	return &store.Summary{Total: 1, Columns: []string{"begin", "end", "qty", "rate"}, Results: [][]any{{"", "", "0", total.String()}}}, nil
}

// BenchmarkSpend prices what 10,000 machines with a month of history cost
// since the month began, rating being two and a half hours behind (the
// default wait of one hourly period, and the period under way): what a
// GET of a budget, and the gate of a start or an apply, computes. It
// prints the time one spend takes.
func BenchmarkSpend(b *testing.B) {
	ctx := context.Background()
	s := fakeFleet(b)
	s.SetRules(sizeRules())
	p := newPipeline(b, s)
	end := t0.Add(benchHours * time.Hour)
	must(b, s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: benchOwner, Begin: end.Add(-3 * time.Hour), End: end.Add(-2 * time.Hour)}))
	proc := &Processor{Collector: &Collector{Machines: s}, Pipeline: p, Store: s, Period: time.Hour, Logger: quiet}
	q := SpendQuery{Owner: benchOwner, Begin: t0, Now: end.Add(30 * time.Minute)}
	var sp Spend
	b.ResetTimer()
	for b.Loop() {
		var err error
		if sp, err = proc.Spend(ctx, pointsSummarizer{s}, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/spend")
	if !sp.Live.IsPositive() || !sp.Hourly.IsPositive() {
		b.Fatalf("spend %+v: want a live part and an hourly price", sp)
	}
}
