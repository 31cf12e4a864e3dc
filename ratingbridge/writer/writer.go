// Package writer is the rating bridge's writer pipeline: a write
// orchestrator that, per scope, feeds each writer (CSV in the style of AWS
// detailed billing, JSON) the periods already rated, keeping per writer the
// last period written and the running total, and the functions the API uses
// to list and serve the monthly report files.
//
// Reports live at <dir>/<scope>/<YYYY-MM>.<csv|json> and are named
// "<scope>-<YYYY-MM>.<csv|json>". A pass appends to a month's file the
// periods rated since the last one, read from the store a period at a
// time, and rewrites only the file's trailer (the totals): its work is
// proportional to the new points, and a month is never held in memory.
// The bytes are the same whether a month is written in one pass or a
// period at a time. A pass that crashes while appending leaves a file
// without its trailer, which the next pass writes again from the store.
package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/store"
)

// RatedSource is what writers read (store.Rated).
type RatedSource interface {
	RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error)
	GetScopeState(ctx context.Context, scope string) (*store.ScopeState, error)
	ListScopeStates(ctx context.Context) ([]*store.ScopeState, error)
}

// StateStore keeps each writer's progress (store.WriterStates).
type StateStore interface {
	GetWriterState(ctx context.Context, scope, writer string) (*store.WriterState, error)
	PutWriterState(ctx context.Context, s *store.WriterState) error
}

// Writer renders a month's file in pieces, so that a new period is
// appended to it, never the whole month rendered again: the header, each
// period's points, and a trailer of totals that every append rewrites.
type Writer interface {
	// Name keys the writer's state and is its files' extension.
	Name() string
	// Header starts the month's file.
	Header(w io.Writer, m *Month) error
	// Period appends one period's points, in report order; first says no
	// period precedes it in the file.
	Period(w io.Writer, per *Period, first bool) error
	// Trailer ends the file with the month's totals and through.
	Trailer(w io.Writer, m *Month) error
	// ReadTrailer finds the trailer in the last bytes of a file: where it
	// begins in tail, and, into m, the totals it states and how far the
	// file goes (Written, Periods). false: no trailer (a file cut short).
	ReadTrailer(tail []byte, m *Month) (at int, ok bool)
}

// Month is the state of a scope's report of one calendar month (UTC), as
// its trailer states it.
type Month struct {
	Scope string
	Name  string // "2025-01"
	Begin time.Time
	End   time.Time
	// Through is the end of the last rated period the report covers.
	Through time.Time
	// Total is the sum of the prices; Qty of the quantities, of Unit when
	// every point has the same (MixedUnits otherwise).
	Total      decimal.Decimal
	Qty        decimal.Decimal
	Unit       string
	MixedUnits bool
	// Periods counts the periods with points in the file; Written is how
	// far the file already goes (read from its trailer).
	Periods int
	Written time.Time
}

// add counts a period's points into the month's totals.
func (m *Month) add(per *Period) {
	m.Total = m.Total.Add(per.Total)
	m.Qty = m.Qty.Add(per.qtySum())
	for i := range per.Points {
		if u := per.Points[i].Unit; m.Unit == "" {
			m.Unit = u
		} else if m.Unit != u {
			m.MixedUnits = true
		}
	}
	m.Periods++
}

// Period is one rated period's points, in a fixed order, and their total.
type Period struct {
	Begin, End time.Time
	Points     []store.RatedPoint
	Total      decimal.Decimal

	// What every writer reads of the period, worked out once: the sum of
	// the quantities, decimals and units formatted, and each point's desc
	// view. Once prepared, a period is only read (writers render it at the
	// same time).
	prepared  bool
	qty       *decimal.Decimal
	formatted map[decimalKey]string
	rates     map[[2]decimalKey]string
	units     map[string][]byte
	views     []*descView

	// readers counts the feeds yet to render the period: the last one
	// gives its points' buffer to spare, for a later period.
	readers atomic.Int32
	spare   chan<- []store.RatedPoint
}

// release says a feed is done with the period.
func (per *Period) release() {
	if per.spare != nil && per.readers.Add(-1) == 0 {
		select {
		case per.spare <- per.Points[:0]:
		default:
		}
	}
}

// prepare works out what writers read of the period.
func (per *Period) prepare() {
	per.qtySum()
	per.units = map[string][]byte{}
	for i := range per.Points {
		p := &per.Points[i]
		per.format(p.Qty)
		per.format(p.Price)
		per.rate(p.Qty, p.Price)
		if _, ok := per.units[p.Unit]; !ok {
			per.units[p.Unit] = csvFields(p.Unit)
		}
	}
	per.prepared = true
}

// view is point i's desc view.
func (per *Period) view(i int) *descView {
	if per.views != nil {
		return per.views[i]
	}
	return newDescView(&per.Points[i])
}

// unitCSV is unit as a CSV field.
func (per *Period) unitCSV(unit string) []byte {
	if b, ok := per.units[unit]; ok {
		return b
	}
	return csvFields(unit)
}

// qtySum is the sum of the points' quantities.
func (per *Period) qtySum() decimal.Decimal {
	if per.qty == nil {
		sum := decimal.Zero
		for i := range per.Points {
			sum = sum.Add(per.Points[i].Qty)
		}
		per.qty = &sum
	}
	return *per.qty
}

// decimalKey is a decimal of at most 18 digits, comparable.
type decimalKey struct {
	coef int64
	exp  int32
}

func keyOf(d decimal.Decimal) (decimalKey, bool) {
	if d.NumDigits() > 18 {
		return decimalKey{}, false
	}
	return decimalKey{d.CoefficientInt64(), d.Exponent()}, true
}

// format is d.String(), worked out once per value a period holds.
func (per *Period) format(d decimal.Decimal) string {
	k, ok := keyOf(d)
	if !ok {
		return d.String()
	}
	if s, ok := per.formatted[k]; ok || per.prepared {
		if !ok {
			s = d.String()
		}
		return s
	}
	if per.formatted == nil {
		per.formatted = map[decimalKey]string{}
	}
	s := d.String()
	per.formatted[k] = s
	return s
}

// rate is price ÷ qty rounded to RatePlaces, "" when qty is 0, worked out
// once per pair of values a period holds.
func (per *Period) rate(qty, price decimal.Decimal) string {
	if qty.IsZero() {
		return ""
	}
	qk, ok1 := keyOf(qty)
	pk, ok2 := keyOf(price)
	if !ok1 || !ok2 {
		return price.DivRound(qty, RatePlaces).String()
	}
	k := [2]decimalKey{qk, pk}
	if s, ok := per.rates[k]; ok || per.prepared {
		if !ok {
			s = price.DivRound(qty, RatePlaces).String()
		}
		return s
	}
	if per.rates == nil {
		per.rates = map[[2]decimalKey]string{}
	}
	s := price.DivRound(qty, RatePlaces).String()
	per.rates[k] = s
	return s
}

// DefaultPageSize is how many rated points one store read returns.
const DefaultPageSize = 5000

// Orchestrator writes reports for every scope. It is safe for concurrent
// use; passes are serialized.
type Orchestrator struct {
	Rated  RatedSource
	States StateStore
	// Dir is the reports directory.
	Dir string
	// Writers are the writers fed (CSV and JSON when nil).
	Writers []Writer
	// PageSize, when set, makes reads go by pages of that many points
	// even from a PointStreamer; pages of DefaultPageSize are read from a
	// source that cannot stream.
	PageSize int
	Logger   *slog.Logger

	mu sync.Mutex
	// views are the desc views of earlier passes (under mu).
	views descViews
	// spare holds points buffers of periods every feed is done with.
	spare chan []store.RatedPoint
}

// New returns an orchestrator of the CSV and JSON writers.
func New(rated RatedSource, states StateStore, dir string) *Orchestrator {
	return &Orchestrator{Rated: rated, States: states, Dir: dir}
}

func (o *Orchestrator) writers() []Writer {
	if o.Writers != nil {
		return o.Writers
	}
	return []Writer{CSV{}, JSON{}}
}

// WriteAll brings every scope's reports up to its last rated period. A
// scope's failure does not stop the others.
func (o *Orchestrator) WriteAll(ctx context.Context) error {
	states, err := o.Rated.ListScopeStates(ctx)
	if err != nil {
		return fmt.Errorf("write reports: list scopes: %w", err)
	}
	var errs []error
	for _, st := range states {
		if err := o.WriteScope(ctx, st.Scope); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WriteScope brings one scope's reports up to its last rated period:
// each writer whose state is behind gets the periods rated since, appended
// to their months' files, and its state moves to the last rated period
// with the running total of what it wrote. The periods are read from the
// store one at a time: a month is never held in memory, and a pass costs
// what it appends, not the month.
func (o *Orchestrator) WriteScope(ctx context.Context, scope string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := ValidScope(scope); err != nil {
		return fmt.Errorf("write reports of %q: %w", scope, err)
	}
	st, err := o.Rated.GetScopeState(ctx, scope)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write reports of %s: %w", scope, err)
	}
	through := st.LastProcessed.UTC()

	var todo []*feed
	for _, w := range o.writers() {
		ws, err := o.States.GetWriterState(ctx, scope, w.Name())
		switch {
		case errors.Is(err, store.ErrNotFound):
			ws = &store.WriterState{Scope: scope, Writer: w.Name()}
		case err != nil:
			return fmt.Errorf("write %s reports of %s: %w", w.Name(), scope, err)
		}
		if !ws.LastWritten.Before(through) {
			continue
		}
		todo = append(todo, &feed{o: o, w: w, scope: scope, through: through, state: *ws, from: ws.LastWritten.UTC()})
	}
	if len(todo) == 0 {
		return nil
	}
	defer func() {
		for _, f := range todo {
			f.abandon()
		}
	}()
	start := slices.MinFunc(todo, func(a, b *feed) int { return a.from.Compare(b.from) }).from
	// One goroutine reads the periods, one per writer renders them: a
	// period goes to every writer, which only read it.
	if o.spare == nil {
		o.spare = make(chan []store.RatedPoint, 4)
	}
	g, gctx := errgroup.WithContext(ctx)
	chans := make([]chan *Period, len(todo))
	for i, f := range todo {
		ch := make(chan *Period, 1)
		chans[i] = ch
		g.Go(func() error {
			for per := range ch {
				if !per.Begin.Before(f.from) {
					f.delta = f.delta.Add(per.Total)
					if err := f.append(gctx, per); err != nil {
						return err
					}
				}
				per.release()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer func() {
			for _, ch := range chans {
				close(ch)
			}
		}()
		return o.periods(gctx, scope, start, through, &o.views, func(per *Period) error {
			per.prepare()
			per.readers.Store(int32(len(chans)))
			for _, ch := range chans {
				select {
				case ch <- per:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	for _, f := range todo {
		if err := f.finish(ctx); err != nil {
			return err
		}
	}
	for _, f := range todo {
		ws := store.WriterState{Scope: scope, Writer: f.w.Name(), LastWritten: through, Total: f.state.Total.Add(f.delta)}
		if err := o.States.PutWriterState(ctx, &ws); err != nil {
			return fmt.Errorf("write %s reports of %s: save state: %w", f.w.Name(), scope, err)
		}
	}
	o.log().Debug("reports written", "scope", scope, "through", through)
	return nil
}

func (o *Orchestrator) log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// PointStreamer is a RatedSource that can also walk a query's points in
// one pass (store/sqlite does): the writers then read each period once,
// instead of a page at a time. fn's point is valid for the call.
type PointStreamer interface {
	EachRatedPoint(ctx context.Context, q store.SummaryQuery, fn func(p *store.RatedPoint) error) error
}

// periods reads the scope's rated points of [from, to) from the store and
// calls fn with each period's points in report order, and, with views,
// their desc views. It holds one period (and, reading by pages, one page)
// at most.
func (o *Orchestrator) periods(ctx context.Context, scope string, from, to time.Time, views *descViews, fn func(*Period) error) error {
	if ps, ok := o.Rated.(PointStreamer); ok && o.PageSize <= 0 {
		return o.streamPeriods(ctx, ps, scope, from, to, views, fn)
	}
	page := o.PageSize
	if page <= 0 {
		page = DefaultPageSize
	}
	var buf []store.RatedPoint
	more := true
	for {
		// The first period in buf is complete once a point of a later
		// period follows it, or the store has no more points.
		n := 0
		for n < len(buf) && buf[n].Begin.Equal(buf[0].Begin) && buf[n].End.Equal(buf[0].End) {
			n++
		}
		if len(buf) > 0 && (n < len(buf) || !more) {
			if err := fn(newPeriod(buf[:n:n], views)); err != nil {
				return err
			}
			buf = buf[n:]
			continue
		}
		if !more {
			return nil
		}
		// Read on from the period buf holds (from the start when it is
		// empty), past what buf already has of it.
		q := store.SummaryQuery{Scope: scope, Begin: from, End: to, Offset: len(buf), Limit: page}
		if len(buf) > 0 {
			q.Begin = buf[0].Begin
		}
		got, err := o.Rated.RatedPoints(ctx, q)
		if err != nil {
			return fmt.Errorf("write reports of %s: read rated points from %s: %w", scope, q.Begin.Format(time.RFC3339), err)
		}
		more = len(got) == page
		buf = append(slices.Clip(buf), got...)
	}
}

// streamPeriods is periods over a PointStreamer.
func (o *Orchestrator) streamPeriods(ctx context.Context, ps PointStreamer, scope string, from, to time.Time, views *descViews, fn func(*Period) error) error {
	var buf []store.RatedPoint
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		per := newPeriod(buf, views)
		per.spare = o.spare
		// fn's period keeps its points until it releases them.
		select {
		case buf = <-o.spare:
		default:
			buf = make([]store.RatedPoint, 0, len(buf))
		}
		return fn(per)
	}
	err := ps.EachRatedPoint(ctx, store.SummaryQuery{Scope: scope, Begin: from, End: to}, func(p *store.RatedPoint) error {
		if len(buf) > 0 && (!p.Begin.Equal(buf[0].Begin) || !p.End.Equal(buf[0].End)) {
			if err := flush(); err != nil {
				return err
			}
		}
		buf = append(buf, *p)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("write reports of %s: read rated points from %s: %w", scope, from.Format(time.RFC3339), err)
	}
	return nil
}

// newPeriod makes the period of points, all of one window, in report
// order, with its total and, with views, the points' desc views.
func newPeriod(points []store.RatedPoint, views *descViews) *Period {
	per := &Period{Begin: points[0].Begin.UTC(), End: points[0].End.UTC(), Points: points, Total: decimal.Zero}
	per.setViews(views)
	// comparePoints orders every field a report shows: a stable sort
	// would give the same bytes. Points mostly come in that order already
	// (the collector's, by machine): then one pass checks it.
	if !per.sorted() {
		slices.SortFunc(per.Points, comparePoints)
		per.setViews(views)
	}
	for i := range per.Points {
		per.Total = per.Total.Add(per.Points[i].Price)
	}
	return per
}

// setViews looks the points' desc views up, when given views.
func (per *Period) setViews(views *descViews) {
	if views == nil {
		return
	}
	per.views = make([]*descView, len(per.Points))
	for i := range per.Points {
		per.views[i] = views.of(&per.Points[i])
	}
}

// sorted reports whether the points are in report order. The views, when
// the period has them, give the machine ids.
func (per *Period) sorted() bool {
	for i := 1; i < len(per.Points); i++ {
		a, b := &per.Points[i-1], &per.Points[i]
		var c int
		if per.views != nil {
			c = comparePointsBy(a, b, per.views[i-1].machineID, per.views[i].machineID)
		} else {
			c = comparePoints(*a, *b)
		}
		if c > 0 {
			return false
		}
	}
	return true
}

// comparePoints is the fixed order of a report: period, service, machine,
// then every other field.
// The fields are compared one at a time: the canonical forms of the maps
// are built only for points that tie on everything before.
func comparePoints(a, b store.RatedPoint) int {
	return comparePointsBy(&a, &b, a.Groupby["machine_id"], b.Groupby["machine_id"])
}

// comparePointsBy is comparePoints given the points' machine ids.
func comparePointsBy(a, b *store.RatedPoint, aID, bID string) int {
	if c := cmp.Or(
		a.Begin.Compare(b.Begin),
		a.End.Compare(b.End),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(aID, bID),
	); c != 0 {
		return c
	}
	return cmp.Or(
		cmp.Compare(canonical(a.Groupby), canonical(b.Groupby)),
		cmp.Compare(canonical(a.Metadata), canonical(b.Metadata)),
		cmp.Compare(a.Unit, b.Unit),
		a.Qty.Cmp(b.Qty),
		a.Price.Cmp(b.Price),
	)
}

func canonical(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

// feed is one writer's share of a pass: its state before, what it adds,
// and the month file it is appending to.
type feed struct {
	o       *Orchestrator
	w       Writer
	scope   string
	through time.Time
	state   store.WriterState
	from    time.Time // periods before it were written by an earlier pass
	delta   decimal.Decimal
	cur     *monthFile
}

// monthFile is a month's report open for appending: its body written up
// to off, its trailer to be written when it is closed.
type monthFile struct {
	f     *os.File
	month Month
}

func (fd *feed) path(m time.Time) string {
	return filepath.Join(fd.o.Dir, fd.scope, m.Format("2006-01")+"."+fd.w.Name())
}

// append adds a period to the file of its month, opening that month (and
// closing the previous one) when it changes. A period the file already
// holds (written before a crash that lost the state) is not added again.
func (fd *feed) append(ctx context.Context, per *Period) error {
	m := monthStart(per.Begin)
	if fd.cur == nil || !fd.cur.month.Begin.Equal(m) {
		if err := fd.closeMonth(); err != nil {
			return err
		}
		mf, err := fd.openMonth(ctx, m, true)
		if err != nil {
			return err
		}
		fd.cur = mf
	}
	if per.Begin.Before(fd.cur.month.Written) {
		return nil
	}
	if err := fd.w.Period(fd.cur.f, per, fd.cur.month.Periods == 0); err != nil {
		return fd.fail(m, err)
	}
	fd.cur.month.add(per)
	return nil
}

// finish closes the month being appended to and moves the trailer of
// every other month file the pass covers to the new through (periods
// without points were rated there).
func (fd *feed) finish(ctx context.Context) error {
	if err := fd.closeMonth(); err != nil {
		return err
	}
	for m := monthStart(fd.from); m.Before(fd.through); m = m.AddDate(0, 1, 0) {
		if fd.from.IsZero() {
			break // a first pass writes only the months that have points
		}
		if _, err := os.Stat(fd.path(m)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		mf, err := fd.openMonth(ctx, m, false)
		if err != nil {
			return err
		}
		fd.cur = mf
		if err := fd.closeMonth(); err != nil {
			return err
		}
	}
	return nil
}

// openMonth opens month m's file for appending after its last period. A
// missing file starts with the header; a file without its trailer (a
// pass that crashed while writing) and a missing file of a month an
// earlier pass wrote part of are written again from the store up to
// where this pass begins. create false opens only an existing file.
func (fd *feed) openMonth(ctx context.Context, m time.Time, create bool) (*monthFile, error) {
	dir := filepath.Join(fd.o.Dir, fd.scope)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fd.fail(m, err)
	}
	end := m.AddDate(0, 1, 0)
	mf := &monthFile{month: Month{Scope: fd.scope, Name: m.Format("2006-01"), Begin: m, End: end, Total: decimal.Zero, Qty: decimal.Zero}}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(fd.path(m), flags, 0o600)
	if err != nil {
		return nil, fd.fail(m, err)
	}
	mf.f = f
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fd.fail(m, err)
	}
	if size := info.Size(); size > 0 {
		tail := make([]byte, min(size, tailSize))
		if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
			f.Close()
			return nil, fd.fail(m, err)
		}
		if at, ok := fd.w.ReadTrailer(tail, &mf.month); ok {
			off := size - int64(len(tail)) + int64(at)
			if err := f.Truncate(off); err == nil {
				_, err = f.Seek(off, io.SeekStart)
			}
			if err != nil {
				f.Close()
				return nil, fd.fail(m, err)
			}
			return mf, nil
		}
		fd.o.log().Warn("report without its trailer: writing it again", "scope", fd.scope, "month", mf.month.Name, "writer", fd.w.Name())
		mf.month = Month{Scope: fd.scope, Name: mf.month.Name, Begin: m, End: end, Total: decimal.Zero, Qty: decimal.Zero}
		if err := f.Truncate(0); err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, fd.fail(m, err)
		}
	}
	if err := fd.w.Header(f, &mf.month); err != nil {
		f.Close()
		return nil, fd.fail(m, err)
	}
	// What earlier passes wrote of this month, from the store.
	if upTo := minTime(fd.from, end); upTo.After(m) {
		err := fd.o.periods(ctx, fd.scope, m, upTo, nil, func(per *Period) error {
			if err := fd.w.Period(f, per, mf.month.Periods == 0); err != nil {
				return fd.fail(m, err)
			}
			mf.month.add(per)
			return nil
		})
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	return mf, nil
}

// rewrite writes month m's file again, whole, from the store (periods
// before the feed's through), into a temporary file that then replaces it:
// a crash leaves the old file or the new one.
func (fd *feed) rewrite(ctx context.Context, m time.Time) error {
	dir := filepath.Join(fd.o.Dir, fd.scope)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fd.fail(m, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+m.Format("2006-01")+"-*")
	if err != nil {
		return fd.fail(m, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	end := m.AddDate(0, 1, 0)
	month := Month{Scope: fd.scope, Name: m.Format("2006-01"), Begin: m, End: end, Total: decimal.Zero, Qty: decimal.Zero}
	err = fd.w.Header(tmp, &month)
	if err == nil {
		err = fd.o.periods(ctx, fd.scope, m, minTime(fd.through, end), nil, func(per *Period) error {
			if err := fd.w.Period(tmp, per, month.Periods == 0); err != nil {
				return err
			}
			month.add(per)
			return nil
		})
	}
	if err == nil {
		month.Through = minTime(fd.through, end)
		err = fd.w.Trailer(tmp, &month)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), fd.path(m))
	}
	if err != nil {
		return fd.fail(m, err)
	}
	return nil
}

// tailSize is how much of a file's end is read to find its trailer: more
// than a trailer and a CSV row.
const tailSize = 64 << 10

// closeMonth writes the open month's trailer, through this pass, and
// syncs and closes its file.
func (fd *feed) closeMonth() error {
	mf := fd.cur
	if mf == nil {
		return nil
	}
	fd.cur = nil
	mf.month.Through = minTime(fd.through, mf.month.End)
	err := fd.w.Trailer(mf.f, &mf.month)
	if err == nil {
		err = mf.f.Sync()
	}
	if cerr := mf.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fd.fail(mf.month.Begin, err)
	}
	return nil
}

// abandon closes a month file a failed pass left open, without its
// trailer: the next pass writes that month again.
func (fd *feed) abandon() {
	if fd.cur != nil {
		fd.cur.f.Close()
		fd.cur = nil
	}
}

func (fd *feed) fail(m time.Time, err error) error {
	return fmt.Errorf("write %s report %s of %s: %w", fd.w.Name(), m.Format("2006-01"), fd.scope, err)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
