package ratingbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// RatedStore is where rated periods go (store.Rated).
type RatedStore interface {
	CommitRatedPeriod(ctx context.Context, p *store.RatedPeriod) error
	GetScopeState(ctx context.Context, scope string) (*store.ScopeState, error)
}

// Defaults of a Processor.
const (
	DefaultWaitPeriods = 1
	// DefaultBatchPeriods is a week of hourly periods. Every history query
	// costs about 15 µs per machine besides its records (on SQLite), so a
	// catch-up takes as few as the memory bound below allows; the period
	// bound caps the records one query returns.
	DefaultBatchPeriods = 168
	// maxBatchPoints bounds the points one batch of frames holds: a scope
	// with many machines is caught up in shorter batches. Before the first
	// batch, every machine of the scope counts as a point per period. The
	// collector works a batch ahead of rating, and the reports follow, so
	// two batches and a period being written are held at once: 150,000
	// points keep a replica billing 10,000 machines under 150 MiB resident
	// (BenchmarkBilling), for a history query every 15 hourly periods.
	maxBatchPoints = 150_000
	// DefaultFollowPoints is how many committed points wake a
	// ScopeWriter: each write syncs the month's files, so it is woken per
	// some ten periods of 10,000 machines, not per period.
	DefaultFollowPoints = 50_000
)

// Processor rates every closed period of every scope, in order: collect,
// rate with the pipeline as configured for that period, commit. A commit
// stores the period and advances the scope's state together, and refuses a
// period that does not start where the state is, so a crash never rates a
// period twice or skips one, and two processors (two replicas, or the timer
// and POST /rating/process) may race: the loser reloads the state and goes
// on from there.
type Processor struct {
	Collector *Collector
	Pipeline  *Pipeline
	Store     RatedStore
	// Scopes lists the scopes to rate (OwnerScopes).
	Scopes func(ctx context.Context) ([]string, error)
	// Period is the length of a period (DefaultPeriod when 0). Periods are
	// aligned to the Unix epoch.
	Period time.Duration
	// WaitPeriods is how many more periods must pass before a period is
	// closed: it is closed once now >= end + WaitPeriods × Period. 0 means
	// DefaultWaitPeriods; a negative value means no wait.
	WaitPeriods int
	// BatchPeriods is how many periods one history query covers at most
	// when a scope is behind (DefaultBatchPeriods when 0); batches hold at
	// most about a million points.
	BatchPeriods int
	// Clock is the time (time.Now when nil).
	Clock func() time.Time
	// Writers, when set, runs after every pass of Run.
	Writers interface {
		WriteAll(ctx context.Context) error
	}
	// ScopeWriter, when set, writes a scope's reports while the scope is
	// rated: woken each time FollowPoints points are committed, and once
	// after the last commit, it appends what was committed, so a long
	// catch-up's reports follow it on the other core instead of waiting
	// for it. Its errors are logged; the writers' next pass retries.
	ScopeWriter interface {
		WriteScope(ctx context.Context, scope string) error
	}
	// FollowPoints is how many committed points wake the ScopeWriter
	// (DefaultFollowPoints when 0).
	FollowPoints int
	Logger       *slog.Logger

	mu sync.Mutex // one pass at a time in this process
}

// Pass is what one pass rated.
type Pass struct {
	Scopes  int `json:"scopes"`
	Periods int `json:"periods"`
	Points  int `json:"points"`
}

func (p *Processor) period() time.Duration {
	if p.Period > 0 {
		return p.Period
	}
	return DefaultPeriod
}

func (p *Processor) wait() int {
	switch {
	case p.WaitPeriods < 0:
		return 0
	case p.WaitPeriods == 0:
		return DefaultWaitPeriods
	}
	return p.WaitPeriods
}

func (p *Processor) now() time.Time {
	if p.Clock != nil {
		return p.Clock().UTC()
	}
	return time.Now().UTC()
}

func (p *Processor) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// Closed reports whether the period ending at end is closed at now.
func (p *Processor) Closed(end, now time.Time) bool {
	return !now.Before(end.Add(time.Duration(p.wait()) * p.period()))
}

// ProcessAll rates every closed period of every scope.
func (p *Processor) ProcessAll(ctx context.Context) error {
	_, err := p.Process(ctx)
	return err
}

// Process rates every closed period of every scope and says how much it
// rated. A scope's failure does not stop the others; the errors are joined.
func (p *Processor) Process(ctx context.Context) (Pass, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pass Pass
	scopes, err := p.Scopes(ctx)
	if err != nil {
		return pass, fmt.Errorf("process ratings: list scopes: %w", err)
	}
	var errs []error
	for _, scope := range scopes {
		if err := ctx.Err(); err != nil {
			return pass, fmt.Errorf("process ratings: %w", err)
		}
		periods, points, err := p.processScope(ctx, scope)
		pass.Periods += periods
		pass.Points += points
		if periods > 0 {
			pass.Scopes++
		}
		if err != nil {
			p.log().Error("rating scope failed", "scope", scope, "err", err)
			errs = append(errs, err)
		}
	}
	return pass, errors.Join(errs...)
}

// ProcessScope rates every closed period of one scope and returns how many
// periods and points it committed.
func (p *Processor) ProcessScope(ctx context.Context, scope string) (periods, points int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.processScope(ctx, scope)
}

func (p *Processor) processScope(ctx context.Context, scope string) (periods, points int, err error) {
	sc := p.Collector.scope(scope)
	now := p.now()
	next, ok, err := p.start(ctx, sc, now)
	if err != nil || !ok {
		return 0, 0, err
	}
	period := p.period()
	limit := PeriodStart(now.Add(-time.Duration(p.wait())*period), period) // no closed period ends after it
	committed := func(int) {}
	if p.ScopeWriter != nil {
		wake := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.follow(ctx, scope, wake)
		}()
		some := false
		defer func() {
			if some {
				wake <- struct{}{} // the last commit's write
			}
			close(wake)
			<-done
		}()
		pending, every := 0, p.FollowPoints
		if every <= 0 {
			every = DefaultFollowPoints
		}
		committed = func(points int) {
			some = true
			if pending += points; pending < every {
				return
			}
			pending = 0
			select {
			case wake <- struct{}{}:
			default: // the writer has a wake-up pending
			}
		}
	}
	for {
		moved, n, pts, err := p.catchUp(ctx, sc, next, limit, committed)
		periods += n
		points += pts
		if err != nil || moved.IsZero() {
			return periods, points, err
		}
		// Another processor got there first: go on from its state.
		next = moved
	}
}

// follow writes the scope's reports each time wake has a value, until it
// is closed.
func (p *Processor) follow(ctx context.Context, scope string, wake <-chan struct{}) {
	for range wake {
		if err := p.ScopeWriter.WriteScope(ctx, scope); err != nil && ctx.Err() == nil {
			p.log().Warn("writing reports while rating failed; the next pass retries", "scope", scope, "err", err)
		}
	}
}

// collectedFrame is a frame collected and ready to rate, or why it is
// not.
type collectedFrame struct {
	frame *dataframe.DataFrame
	err   error
}

// catchUp rates and commits the scope's periods from next up to limit. One
// goroutine collects the frames ahead while this one rates and commits
// them, in order: the two halves run on two cores, and each period is
// rated with the rules as they are once the period before it is
// committed. On a conflict it stops and returns the state another
// processor moved the scope to.
func (p *Processor) catchUp(ctx context.Context, sc *scopeCollection, next, limit time.Time, committed func(points int)) (moved time.Time, periods, points int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	collected := make(chan collectedFrame, 1)
	go func() {
		defer close(collected)
		p.collectFrom(ctx, sc, next, limit, collected)
	}()
	defer func() {
		cancel()
		for range collected { // the collector stops at its next send
		}
	}()
	// Each period's points are committed from one buffer: the store copies
	// what it keeps.
	var buf []store.RatedPoint
	for cf := range collected {
		if cf.err != nil {
			return time.Time{}, periods, points, cf.err
		}
		rp, err := p.rate(ctx, sc.scope, cf.frame, buf[:0])
		if err != nil {
			return time.Time{}, periods, points, err
		}
		moved, err := p.commit(ctx, rp)
		if err != nil || !moved.IsZero() {
			return moved, periods, points, err
		}
		committed(len(rp.Points))
		buf = rp.Points
		periods++
		points += len(rp.Points)
	}
	return time.Time{}, periods, points, ctx.Err()
}

// collectFrom collects the scope's periods from next up to limit and sends
// each frame to out, stopping at the first error (which it sends) or when
// ctx ends.
func (p *Processor) collectFrom(ctx context.Context, sc *scopeCollection, next, limit time.Time, out chan<- collectedFrame) {
	period := p.period()
	batch := p.BatchPeriods
	if batch <= 0 {
		batch = DefaultBatchPeriods
	}
	send := func(cf collectedFrame) bool {
		select {
		case out <- cf:
			return cf.err == nil
		case <-ctx.Done():
			return false
		}
	}
	for {
		var (
			frames []*dataframe.DataFrame
			err    error
		)
		if aligned := PeriodStart(next, period); !aligned.Equal(next) {
			// A state left by a different period length: catch up to
			// the next boundary with one shorter period.
			end := aligned.Add(period)
			if end.After(limit) {
				return
			}
			frames, err = sc.collect(ctx, next, end.Sub(next), 1)
		} else {
			n := int(limit.Sub(next) / period)
			if n <= 0 {
				return
			}
			frames, err = sc.batch(ctx, next, period, n, batch)
		}
		if err != nil {
			send(collectedFrame{err: err})
			return
		}
		for i, f := range frames {
			frames[i] = nil // sent on, it is the rater's
			if !send(collectedFrame{frame: f}) {
				return
			}
			next = f.End
		}
	}
}

// rate rates one frame with the pipeline as configured for its period; the
// period's points go into buf.
func (p *Processor) rate(ctx context.Context, scope string, f *dataframe.DataFrame, buf []store.RatedPoint) (*store.RatedPeriod, error) {
	rating, err := p.Pipeline.LoadPeriod(ctx, f.Start, f.End)
	if err != nil {
		return nil, fmt.Errorf("rate %s period %s: %w", scope, f.Start.Format(time.RFC3339), err)
	}
	if err := rating.Rate(ctx, f); err != nil {
		return nil, fmt.Errorf("rate %s period %s: %w", scope, f.Start.Format(time.RFC3339), err)
	}
	return ToRatedPeriod(scope, f, buf), nil
}

// commit commits one rated period. On a conflict it returns the scope's
// state that another processor advanced.
func (p *Processor) commit(ctx context.Context, rp *store.RatedPeriod) (time.Time, error) {
	err := p.Store.CommitRatedPeriod(ctx, rp)
	if err == nil {
		return time.Time{}, nil
	}
	scope, begin := rp.Scope, rp.Begin.Format(time.RFC3339)
	if !errors.Is(err, store.ErrConflict) {
		return time.Time{}, fmt.Errorf("commit %s period %s: %w", scope, begin, err)
	}
	st, serr := p.Store.GetScopeState(ctx, scope)
	if serr != nil {
		return time.Time{}, fmt.Errorf("commit %s period %s: %w; reload state: %w", scope, begin, err, serr)
	}
	if !st.LastProcessed.After(rp.Begin) {
		return time.Time{}, fmt.Errorf("commit %s period %s: %w (state at %s)", scope, begin, err, st.LastProcessed.Format(time.RFC3339))
	}
	p.log().Debug("rating period committed elsewhere", "scope", scope, "period", rp.Begin, "state", st.LastProcessed)
	return st.LastProcessed.UTC(), nil
}

// start is where rating resumes for a scope: its state, or for a new scope
// the period of its first state record; false when it has no history.
func (p *Processor) start(ctx context.Context, sc *scopeCollection, now time.Time) (time.Time, bool, error) {
	st, err := p.Store.GetScopeState(ctx, sc.scope)
	if err == nil {
		return st.LastProcessed.UTC(), true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return time.Time{}, false, fmt.Errorf("rate %s: read state: %w", sc.scope, err)
	}
	first, ok, err := p.firstRecord(ctx, sc, now)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	return PeriodStart(first, p.period()), true, nil
}

// firstRecord is the time of the scope's first state record before now.
// A machine's history starts when it is created, so the earliest creation
// time c of the scope's machines is checked first with a query of the
// window [c-1ns, c+1ns), which holds each machine's last record at or
// before c-1ns and its records at c: if every record it returns is at c,
// no record is earlier and c is the answer. Otherwise (a record before a
// creation time, or history of machines no longer listed) the whole
// history is read.
func (p *Processor) firstRecord(ctx context.Context, sc *scopeCollection, now time.Time) (time.Time, bool, error) {
	if err := sc.listed(ctx); err != nil {
		return time.Time{}, false, fmt.Errorf("rate %s: read first state: %w", sc.scope, err)
	}
	epoch := time.Unix(0, 0).UTC()
	c := sc.firstCreated
	if !c.IsZero() && c.Before(now) {
		recs, err := p.Collector.Machines.StateHistory(ctx, store.HistoryQuery{OwnerID: sc.scope, From: c.Add(-time.Nanosecond), To: c.Add(time.Nanosecond)})
		if err != nil {
			return time.Time{}, false, fmt.Errorf("rate %s: read first state: %w", sc.scope, err)
		}
		if len(recs) > 0 && !slices.ContainsFunc(recs, func(r stack.StateRecord) bool { return !r.At.Equal(c) }) {
			return c.UTC(), true, nil
		}
	}
	recs, err := p.Collector.Machines.StateHistory(ctx, store.HistoryQuery{OwnerID: sc.scope, From: epoch, To: now})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("rate %s: read first state: %w", sc.scope, err)
	}
	if len(recs) == 0 {
		return time.Time{}, false, nil
	}
	return slices.MinFunc(recs, func(a, b stack.StateRecord) int { return a.At.Compare(b.At) }).At, true, nil
}

// ToRatedPeriod turns a rated frame into the store's shape: services in
// name order, points in frame order, appended to buf[:0].
func ToRatedPeriod(scope string, f *dataframe.DataFrame, buf []store.RatedPoint) *store.RatedPeriod {
	rp := &store.RatedPeriod{Scope: scope, Begin: f.Start.UTC(), End: f.End.UTC(), Points: slices.Grow(buf[:0], f.Len())}
	for _, s := range f.Services() {
		for _, pt := range f.Usage[s] {
			rp.Points = append(rp.Points, store.RatedPoint{
				Scope: scope, Begin: rp.Begin, End: rp.End, Service: s, Unit: pt.Unit,
				Qty: pt.Qty, Price: pt.Price, Groupby: pt.Groupby, Metadata: pt.Metadata,
			})
		}
	}
	return rp
}

// Run rates on every tick until ctx ends or tick closes, then runs the
// writers. Errors are logged: the next tick retries. It returns nil when
// stopped.
func (p *Processor) Run(ctx context.Context, tick <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-tick:
			if !ok {
				return nil
			}
			pass, err := p.Process(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				p.log().Error("rating pass failed", "err", err)
			} else if pass.Periods > 0 {
				p.log().Info("rated", "scopes", pass.Scopes, "periods", pass.Periods, "points", pass.Points)
			}
			if p.Writers != nil {
				if err := p.Writers.WriteAll(ctx); err != nil && ctx.Err() == nil {
					p.log().Error("writing reports failed", "err", err)
				}
			}
		}
	}
}

// MachineLister lists machines (store.Machines).
type MachineLister interface {
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
}

// ScopeLister lists scopes already rated (store.Rated).
type ScopeLister interface {
	ListScopeStates(ctx context.Context) ([]*store.ScopeState, error)
}

// OwnerScopes returns a Processor.Scopes: the owners of every machine and
// every scope already rated (so a scope whose machines are gone still
// closes its periods), sorted.
func OwnerScopes(machines MachineLister, rated ScopeLister) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		ms, err := machines.ListMachines(ctx, store.MachineFilter{})
		if err != nil {
			return nil, fmt.Errorf("list scopes: %w", err)
		}
		states, err := rated.ListScopeStates(ctx)
		if err != nil {
			return nil, fmt.Errorf("list scopes: %w", err)
		}
		set := map[string]bool{}
		for _, m := range ms {
			if m.OwnerID != "" {
				set[m.OwnerID] = true
			}
		}
		for _, s := range states {
			set[s.Scope] = true
		}
		out := make([]string, 0, len(set))
		for s := range set {
			out = append(out, s)
		}
		slices.Sort(out)
		return out, nil
	}
}
