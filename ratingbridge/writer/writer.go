// Package writer is the rating bridge's writer pipeline: a write
// orchestrator that, per scope, feeds each writer (CSV in the style of AWS
// detailed billing, JSON) the periods already rated, keeping per writer the
// last period written and the running total, and the functions the API uses
// to list and serve the monthly report files.
//
// Reports live at <dir>/<scope>/<YYYY-MM>.<csv|json> and are named
// "<scope>-<YYYY-MM>.<csv|json>". A month's file is always rewritten whole
// from the stored rated points, in a fixed order, and replaced atomically,
// so rewriting a month from the same data gives the same bytes and a crash
// leaves either the old file or the new one.
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
	"time"

	"github.com/shopspring/decimal"

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

// Writer renders one month of a scope's rated usage.
type Writer interface {
	// Name keys the writer's state and is its files' extension.
	Name() string
	Write(w io.Writer, m *Month) error
}

// Month is a scope's rated usage in one calendar month (UTC) up to Through,
// the end of the last rated period it holds.
type Month struct {
	Scope   string
	Name    string // "2025-01"
	Begin   time.Time
	End     time.Time
	Through time.Time
	Periods []Period
	Total   decimal.Decimal
}

// Period is one rated period's points, in a fixed order, and their total.
type Period struct {
	Begin, End time.Time
	Points     []store.RatedPoint
	Total      decimal.Decimal
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
	Writers  []Writer
	PageSize int
	Logger   *slog.Logger

	mu sync.Mutex
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
// each writer whose state is behind gets every month from the one holding
// its last written period, and its state moves to the last rated period
// with the running total of what it wrote.
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

	type pending struct {
		w     Writer
		state store.WriterState
		from  time.Time // first month to write
		delta decimal.Decimal
	}
	var todo []*pending
	var firstPoint *time.Time
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
		p := &pending{w: w, state: *ws}
		if ws.LastWritten.IsZero() {
			if firstPoint == nil {
				pts, err := o.Rated.RatedPoints(ctx, store.SummaryQuery{Scope: scope, Limit: 1})
				if err != nil {
					return fmt.Errorf("write reports of %s: %w", scope, err)
				}
				t := through
				if len(pts) > 0 {
					t = pts[0].Begin
				}
				firstPoint = &t
			}
			p.from = monthStart(*firstPoint)
		} else {
			p.from = monthStart(ws.LastWritten)
		}
		todo = append(todo, p)
	}
	if len(todo) == 0 {
		return nil
	}
	start := slices.MinFunc(todo, func(a, b *pending) int { return a.from.Compare(b.from) }).from
	for m := start; m.Before(through); m = m.AddDate(0, 1, 0) {
		month, err := o.load(ctx, scope, m, through)
		if err != nil {
			return err
		}
		for _, p := range todo {
			if m.Before(p.from) {
				continue
			}
			if len(month.Periods) > 0 {
				if err := o.writeFile(scope, month, p.w); err != nil {
					return err
				}
			}
			for _, per := range month.Periods {
				if !per.Begin.Before(p.state.LastWritten) {
					p.delta = p.delta.Add(per.Total)
				}
			}
		}
	}
	for _, p := range todo {
		ws := store.WriterState{Scope: scope, Writer: p.w.Name(), LastWritten: through, Total: p.state.Total.Add(p.delta)}
		if err := o.States.PutWriterState(ctx, &ws); err != nil {
			return fmt.Errorf("write %s reports of %s: save state: %w", p.w.Name(), scope, err)
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

// load reads the month starting at m: the points of periods that begin in
// it and end by through.
func (o *Orchestrator) load(ctx context.Context, scope string, m, through time.Time) (*Month, error) {
	end := m.AddDate(0, 1, 0)
	month := &Month{Scope: scope, Name: m.Format("2006-01"), Begin: m, End: end, Through: end, Total: decimal.Zero}
	if through.Before(end) {
		month.Through = through
	}
	page := o.PageSize
	if page <= 0 {
		page = DefaultPageSize
	}
	var pts []store.RatedPoint
	for offset := 0; ; offset += page {
		got, err := o.Rated.RatedPoints(ctx, store.SummaryQuery{Scope: scope, Begin: m, End: through, Offset: offset, Limit: page})
		if err != nil {
			return nil, fmt.Errorf("write reports of %s: read %s: %w", scope, month.Name, err)
		}
		done := len(got) < page
		for _, p := range got {
			if !p.Begin.Before(end) {
				done = true
				break
			}
			pts = append(pts, p)
		}
		if done {
			break
		}
	}
	slices.SortStableFunc(pts, comparePoints)
	for i := 0; i < len(pts); {
		j := i
		per := Period{Begin: pts[i].Begin.UTC(), End: pts[i].End.UTC(), Total: decimal.Zero}
		for ; j < len(pts) && pts[j].Begin.Equal(pts[i].Begin) && pts[j].End.Equal(pts[i].End); j++ {
			per.Total = per.Total.Add(pts[j].Price)
		}
		per.Points = pts[i:j]
		month.Total = month.Total.Add(per.Total)
		month.Periods = append(month.Periods, per)
		i = j
	}
	return month, nil
}

// comparePoints is the fixed order of a report: period, service, machine,
// then every other field.
func comparePoints(a, b store.RatedPoint) int {
	return cmp.Or(
		a.Begin.Compare(b.Begin),
		a.End.Compare(b.End),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Groupby["machine_id"], b.Groupby["machine_id"]),
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

// writeFile writes the month through w to its file, atomically.
func (o *Orchestrator) writeFile(scope string, m *Month, w Writer) error {
	dir := filepath.Join(o.Dir, scope)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s report %s of %s: %w", w.Name(), m.Name, scope, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+m.Name+"-*")
	if err != nil {
		return fmt.Errorf("write %s report %s of %s: %w", w.Name(), m.Name, scope, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	err = w.Write(tmp, m)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, m.Name+"."+w.Name()))
	}
	if err != nil {
		return fmt.Errorf("write %s report %s of %s: %w", w.Name(), m.Name, scope, err)
	}
	return nil
}
