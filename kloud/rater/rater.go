// Package rater is the server's rating bridge: the pipeline that prices,
// the processor that rates closed periods on one replica at a time, and the
// writers that turn rated periods into reports.
package rater

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kloud/kloud/kloud/singleton"
	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/ratingbridge/writer"
)

// LeaseName is the singleton lease of the rating processor: one replica at
// a time rates.
const LeaseName = "rating-processor"

// Store is what the rater's parts ask of the store: module settings and
// hashmap rules (pipeline), machine history (collector), rated periods and
// scope states (processor), and writer states (writers).
type Store interface {
	ratingbridge.ModuleSettings
	ratingbridge.HashmapRuleSource
	ratingbridge.HistorySource
	ratingbridge.RatedStore
	ratingbridge.ScopeLister
	writer.RatedSource
	writer.StateStore
	ratingbridge.RepriceStore
	ratingbridge.Summarizer
}

// Config is what a Rater needs.
type Config struct {
	Store Store
	// ReportsDir is where the writers put reports.
	ReportsDir string
	// Period is the rating period (ratingbridge.DefaultPeriod when 0);
	// WaitPeriods how many periods must pass after a period's end before
	// it is rated (0: rate it as soon as it closes).
	Period      time.Duration
	WaitPeriods int
	// Leases holds the processor's singleton lease, taken by Holder (this
	// replica) every Interval; Tick makes the ticks (default
	// singleton.RealTicker).
	Leases   singleton.Leases
	Holder   string
	Interval time.Duration
	Tick     singleton.Ticker
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// Observe, when set, hears what each pass rated (metrics).
	Observe func(ratingbridge.Pass)
}

// Rater prices, rates closed periods and writes reports.
type Rater struct {
	pipeline  *ratingbridge.Pipeline
	processor *ratingbridge.Processor
	writers   *writer.Orchestrator
	reports   string
	loop      *singleton.Loop
	observe   func(ratingbridge.Pass)
	store     Store
}

// New builds the rating pipeline from the store's module settings and
// returns a rater on cfg.
func New(cfg Config) (*Rater, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	pipe, err := ratingbridge.NewPipeline(cfg.Store, ratingbridge.DefaultModules(cfg.Store)...)
	if err != nil {
		return nil, fmt.Errorf("rating pipeline: %w", err)
	}
	log := cfg.Log.With("component", "rating")
	writers := writer.New(cfg.Store, cfg.Store, cfg.ReportsDir)
	writers.Logger = log
	return &Rater{
		pipeline: pipe,
		writers:  writers,
		reports:  cfg.ReportsDir,
		store:    cfg.Store,
		processor: &ratingbridge.Processor{
			Collector:   &ratingbridge.Collector{Machines: cfg.Store},
			Pipeline:    pipe,
			Store:       cfg.Store,
			Scopes:      ratingbridge.OwnerScopes(cfg.Store, cfg.Store),
			Period:      cfg.Period,
			WaitPeriods: processorWait(cfg.WaitPeriods),
			Clock:       cfg.Now,
			Logger:      log,
			ScopeWriter: writers,
		},
		observe: cfg.Observe,
		loop: &singleton.Loop{
			Name: LeaseName, Holder: cfg.Holder, Interval: cfg.Interval,
			Leases: cfg.Leases, Now: cfg.Now, Tick: cfg.Tick, Log: log,
		},
	}, nil
}

// processorWait turns the configured wait (0: none) into the processor's
// WaitPeriods, where 0 means its default and a negative value no wait.
func processorWait(periods int) int {
	if periods == 0 {
		return -1
	}
	return periods
}

// Pipeline is the rating pipeline: modules, quotes and estimates.
func (r *Rater) Pipeline() *ratingbridge.Pipeline { return r.pipeline }

// ReportsDir is where the writers put reports.
func (r *Rater) ReportsDir() string { return r.reports }

// Process rates every closed period now and writes the reports.
func (r *Rater) Process(ctx context.Context) (ratingbridge.Pass, error) {
	pass, err := r.processor.Process(ctx)
	if r.observe != nil {
		r.observe(pass)
	}
	if err != nil {
		return pass, fmt.Errorf("rate periods: %w", err)
	}
	if err := r.writers.WriteAll(ctx); err != nil {
		return pass, fmt.Errorf("write reports: %w", err)
	}
	return pass, nil
}

// Reprocess re-rates the rated periods of each scope beginning in [begin,
// end) with today's rules and, unless dry, rewrites the affected reports.
func (r *Rater) Reprocess(ctx context.Context, scopes []string, begin, end time.Time, dryRun bool) (*ratingbridge.Reprocessed, error) {
	out := &ratingbridge.Reprocessed{DryRun: dryRun, Periods: []ratingbridge.PeriodDelta{}}
	for _, scope := range scopes {
		got, err := r.pipeline.Reprocess(ctx, r.store, scope, begin, end, dryRun)
		if got != nil {
			out.Periods = append(out.Periods, got.Periods...)
			out.Delta = out.Delta.Add(got.Delta)
			out.Scanned += got.Scanned
		}
		if !dryRun && got != nil && len(got.Periods) > 0 {
			changes := make([]writer.Change, len(got.Periods))
			for i, p := range got.Periods {
				changes[i] = writer.Change{Begin: p.Begin, Delta: p.Delta}
			}
			if werr := r.writers.Rewrite(ctx, scope, changes); werr != nil && err == nil {
				err = fmt.Errorf("rewrite reports: %w", werr)
			}
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Spend is what q costs: rated periods and the live part (see
// ratingbridge.Processor.Spend).
func (r *Rater) Spend(ctx context.Context, q ratingbridge.SpendQuery) (ratingbridge.Spend, error) {
	return r.processor.Spend(ctx, r.store, q)
}

// Period is the rating period.
func (r *Rater) Period() time.Duration {
	if r.processor.Period > 0 {
		return r.processor.Period
	}
	return ratingbridge.DefaultPeriod
}

// Run rates and writes at every tick while this replica holds the
// processor's lease, until ctx ends.
func (r *Rater) Run(ctx context.Context) {
	r.loop.Run(ctx, func(ctx context.Context) error {
		_, err := r.Process(ctx)
		return err
	})
}

// Held reports whether this replica holds the processor's lease now.
func (r *Rater) Held(ctx context.Context) bool { return r.loop.Held(ctx) }
