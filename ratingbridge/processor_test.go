package ratingbridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newProcessor(t *testing.T, s *fake.Store, now string) (*Processor, *testenv.FakeClock) {
	t.Helper()
	c := testenv.NewFakeClock(at(now))
	return &Processor{
		Collector: &Collector{Machines: s},
		Pipeline:  newPipeline(t, s),
		Store:     s,
		Scopes:    OwnerScopes(s, s),
		Clock:     c.Now,
		Logger:    quiet,
	}, c
}

// periodSummary is "begin: machine=qty@price ..." for each committed
// period, for compact comparisons.
func periodSummary(ps []store.RatedPeriod) []string {
	var out []string
	for _, p := range ps {
		line := fmt.Sprintf("%s %s:", p.Scope, p.Begin.Sub(t0))
		for _, pt := range p.Points {
			line += fmt.Sprintf(" %s=%s@%s", pt.Groupby[KeyMachineID], pt.Qty, pt.Price)
		}
		out = append(out, line)
	}
	return out
}

func TestProcessNewScope(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u1", StackID: "s1", Provider: "aws", Metadata: []byte(`{"size":"large"}`)})
	s.AddMachine(&stack.Machine{ID: "m2", OwnerID: "u2", StackID: "s2", Provider: "sandbox", Metadata: []byte(`{"size":"small"}`)})
	s.Record(history("m1", rec{"10h20m", building}, rec{"10h30m", running}, rec{"11h15m", stopped})...)
	s.Record(history("m2", rec{"11h", running})...)
	p, clk := newProcessor(t, s, "13h30m")
	pass, err := p.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Closed at 13:30 with one period of grace: periods ending by 12:00.
	want := []string{
		"u1 10h0m0s: m1=0.5@0.0405",
		"u1 11h0m0s: m1=0.25@0.02025",
		"u2 11h0m0s: m2=1@0.01",
	}
	if got := periodSummary(s.Periods()); !slices.Equal(got, want) {
		t.Fatalf("periods\n%v\nwant\n%v", got, want)
	}
	if pass != (Pass{Scopes: 2, Periods: 3, Points: 3}) {
		t.Errorf("pass %+v", pass)
	}
	// Nothing new until the next period closes; then only it.
	if pass, _ := p.Process(ctx); pass.Periods != 0 {
		t.Fatalf("second pass rated %d periods", pass.Periods)
	}
	clk.Set(at("14h"))
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "u1 12h0m0s:", "u2 12h0m0s: m2=1@0.01")
	if got := periodSummary(s.Periods()); !slices.Equal(got, want) {
		t.Fatalf("periods\n%v\nwant\n%v", got, want)
	}
	st, _ := s.GetScopeState(ctx, "u1")
	if !st.LastProcessed.Equal(at("13h")) {
		t.Errorf("u1 state %s, want 13:00 (periods without usage advance it)", st.LastProcessed)
	}
}

func TestProcessWaitPeriods(t *testing.T) {
	for _, tc := range []struct {
		wait int
		now  string
		want int
	}{
		{0, "2h59m", 1}, // default 1: [0,1h) closes at 2h
		{0, "3h", 2},
		{-1, "2h59m", 2}, // no grace: [1h,2h) closes at 2h
		{2, "3h", 1},
		{3, "3h", 0},
	} {
		s := fake.New()
		s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u"})
		s.Record(history("m", rec{"0s", running})...)
		p, _ := newProcessor(t, s, tc.now)
		p.WaitPeriods = tc.wait
		pass, err := p.Process(context.Background())
		if err != nil || pass.Periods != tc.want {
			t.Errorf("wait %d at %s: %d periods (%v), want %d", tc.wait, tc.now, pass.Periods, err, tc.want)
		}
	}
}

func TestProcessCrashNeverSkipsOrRepeats(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u"})
	s.Record(history("m", rec{"0s", running})...)
	p, _ := newProcessor(t, s, "10h")
	p.BatchPeriods = 4
	commits := 0
	s.BeforeCommit = func(*store.RatedPeriod) error {
		commits++
		if commits == 3 || commits == 6 {
			return errors.New("disk on fire")
		}
		return nil
	}
	for range 5 {
		_, _ = p.Process(ctx)
	}
	var begins []time.Duration
	for _, rp := range s.Periods() {
		begins = append(begins, rp.Begin.Sub(t0))
	}
	want := []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5 * time.Hour, 6 * time.Hour, 7 * time.Hour, 8 * time.Hour}
	if !slices.Equal(begins, want) {
		t.Fatalf("committed %v, want every period once: %v", begins, want)
	}
}

func TestProcessConcurrentCommitIsNotAFailure(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u"})
	s.Record(history("m", rec{"0s", running})...)
	p, _ := newProcessor(t, s, "6h")
	// Another replica commits periods 1h and 2h just before this one does.
	other, _ := newProcessor(t, s, "6h")
	raced := false
	s.BeforeCommit = func(rp *store.RatedPeriod) error {
		if raced || !rp.Begin.Equal(at("1h")) {
			return nil
		}
		raced = true
		for _, b := range []string{"1h", "2h"} {
			f, err := other.Collector.Collect(ctx, "u", at(b), at(b).Add(time.Hour))
			if err != nil {
				return err
			}
			if err := s.CommitRatedPeriod(ctx, ToRatedPeriod("u", f, nil)); err != nil {
				return err
			}
		}
		return nil
	}
	pass, err := p.Process(ctx)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if pass.Periods != 3 { // 0h, 3h, 4h by this one; 1h, 2h by the other
		t.Errorf("this processor committed %d periods, want 3", pass.Periods)
	}
	var begins []string
	for _, rp := range s.Periods() {
		begins = append(begins, rp.Begin.Sub(t0).String())
	}
	if want := []string{"0s", "1h0m0s", "2h0m0s", "3h0m0s", "4h0m0s"}; !slices.Equal(begins, want) {
		t.Fatalf("committed %v, want %v", begins, want)
	}
}

func TestProcessRuleChangeAppliesFromNextPeriod(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u", Provider: "sandbox", Metadata: []byte(`{"size":"small"}`)})
	s.Record(history("m", rec{"0s", running})...)
	p, _ := newProcessor(t, s, "4h")
	s.BeforeCommit = func(rp *store.RatedPeriod) error {
		if rp.Begin.Equal(at("0s")) {
			r := sizeRules()
			r.Mappings[0].Cost = d("0.02")
			s.SetRules(r)
		}
		return nil
	}
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"u 0s: m=1@0.01", "u 1h0m0s: m=1@0.02", "u 2h0m0s: m=1@0.02"}
	if got := periodSummary(s.Periods()); !slices.Equal(got, want) {
		t.Fatalf("periods %v, want %v", got, want)
	}
}

func TestProcessRatingErrorStopsTheScopeOnly(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	rules := sizeRules()
	rules.Thresholds = []*hashmap.Threshold{{ID: "t", FieldID: "size", Level: d("1"), Type: "flat", Cost: d("1")}}
	s.SetRules(rules)
	s.AddMachine(&stack.Machine{ID: "bad", OwnerID: "a", Metadata: []byte(`{"size":"large"}`)})
	s.AddMachine(&stack.Machine{ID: "good", OwnerID: "b"})
	s.Record(history("bad", rec{"0s", running})...)
	s.Record(history("good", rec{"0s", running})...)
	p, _ := newProcessor(t, s, "3h")
	pass, err := p.Process(ctx)
	if err == nil {
		t.Fatal("a non-numeric threshold field must fail its scope")
	}
	if pass.Periods != 2 {
		t.Errorf("scope b rated %d periods, want 2", pass.Periods)
	}
	if _, err := s.GetScopeState(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("scope a advanced: %v", err)
	}
}

func TestProcessMisalignedState(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u"})
	s.Record(history("m", rec{"0s", running})...)
	// A state left at 00:30 by a processor with 30-minute periods.
	if err := s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "u", Begin: at("0s"), End: at("30m")}); err != nil {
		t.Fatal(err)
	}
	p, _ := newProcessor(t, s, "3h")
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"u 0s:", "u 30m0s: m=0.5@0", "u 1h0m0s: m=1@0"}
	if got := periodSummary(s.Periods()); !slices.Equal(got, want) {
		t.Fatalf("periods %v, want %v", got, want)
	}
}

type signalWriter struct{ done chan struct{} }

func (w signalWriter) WriteAll(context.Context) error {
	w.done <- struct{}{}
	return nil
}

func TestRun(t *testing.T) {
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u"})
	s.Record(history("m", rec{"0s", running})...)
	p, clk := newProcessor(t, s, "2h")
	w := signalWriter{done: make(chan struct{})}
	p.Writers = w
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	stopped := make(chan error)
	go func() { stopped <- p.Run(ctx, tick) }()
	tick <- at("2h")
	<-w.done
	if n := len(s.Periods()); n != 1 {
		t.Fatalf("after the first tick %d periods, want 1", n)
	}
	clk.Set(at("5h"))
	tick <- at("5h")
	<-w.done
	if n := len(s.Periods()); n != 4 {
		t.Fatalf("after the second tick %d periods, want 4", n)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// A closed tick channel stops it too.
	tick2 := make(chan time.Time)
	close(tick2)
	if err := p.Run(context.Background(), tick2); err != nil {
		t.Fatal(err)
	}
}

func TestOwnerScopes(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "b"})
	s.AddMachine(&stack.Machine{ID: "m2", OwnerID: "a"})
	s.AddMachine(&stack.Machine{ID: "m3", OwnerID: "b"})
	_ = s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "gone", Begin: t0, End: at("1h")})
	got, err := OwnerScopes(s, s)(ctx)
	if err != nil || !slices.Equal(got, []string{"a", "b", "gone"}) {
		t.Fatalf("scopes %v %v", got, err)
	}
}

// unsortedSource returns one machine's records out of order.
type unsortedSource struct{ *fake.Store }

func (u unsortedSource) StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error) {
	recs, err := u.Store.StateHistory(ctx, q)
	slices.Reverse(recs)
	return recs, err
}

func TestCollectSortsEachMachine(t *testing.T) {
	s := fake.New()
	s.Record(history("m", rec{"10m", running}, rec{"40m", stopped})...)
	f, err := (&Collector{Machines: unsortedSource{s}}).Collect(context.Background(), "", at("0s"), at("1h"))
	if err != nil {
		t.Fatal(err)
	}
	if pts := f.Usage[ServiceInstance]; len(pts) != 1 || !pts[0].Qty.Equal(d("0.5")) {
		t.Fatalf("points %+v", pts)
	}
}

func TestFramesOf(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	s.AddMachine(&stack.Machine{ID: "a", OwnerID: "u1", Metadata: []byte(`{"size":"small"}`)})
	s.AddMachine(&stack.Machine{ID: "b", OwnerID: "u1", Metadata: []byte(`{"size":"large"}`)})
	s.AddMachine(&stack.Machine{ID: "c", OwnerID: "u2"})
	for _, id := range []string{"a", "b", "c"} {
		s.Record(history(id, rec{"0s", running})...)
	}
	p, _ := newProcessor(t, s, "3h")
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	pts, _ := s.RatedPoints(ctx, store.SummaryQuery{})
	frames := FramesOf(pts)
	if len(frames) != 4 {
		t.Fatalf("%d frames, want 4 (2 scopes × 2 periods)", len(frames))
	}
	if f := frames[0]; !f.Start.Equal(t0) || f.Len() != 2 || !f.Total().Equal(d("0.09")) {
		t.Errorf("first frame %s: %d points, total %s", f.Start, f.Len(), f.Total())
	}
	if frames[1].Len() != 1 || !frames[2].Start.Equal(at("1h")) {
		t.Errorf("frames out of order")
	}
}

// queryLog records the windows of the history queries and counts the
// machine lists.
type queryLog struct {
	*fake.Store
	mu      sync.Mutex
	windows [][2]time.Time
	lists   int
}

func (q *queryLog) StateHistory(ctx context.Context, h store.HistoryQuery) ([]stack.StateRecord, error) {
	q.mu.Lock()
	q.windows = append(q.windows, [2]time.Time{h.From, h.To})
	q.mu.Unlock()
	return q.Store.StateHistory(ctx, h)
}

func (q *queryLog) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	q.mu.Lock()
	q.lists++
	q.mu.Unlock()
	return q.Store.ListMachines(ctx, f)
}

// TestProcessNewScopeFirstRecord checks where rating starts for a new
// scope: at the period of its first record, found without reading the
// whole history when that record is at a machine's creation, and by
// reading it when a record is older than every creation time.
func TestProcessNewScopeFirstRecord(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(s *fake.Store)
		first   string // begin of the first period rated
		wholeOK bool   // the whole history may be read
	}{
		{"first record at creation", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u", CreatedAt: at("2h20m")})
			s.AddMachine(&stack.Machine{ID: "m2", OwnerID: "u", CreatedAt: at("3h")})
			s.Record(history("m1", rec{"2h20m", building}, rec{"2h30m", running})...)
			s.Record(history("m2", rec{"3h", running})...)
		}, "2h0m0s", false},
		{"two machines created together", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u", CreatedAt: at("1h5m")})
			s.AddMachine(&stack.Machine{ID: "m2", OwnerID: "u", CreatedAt: at("1h5m")})
			s.Record(history("m1", rec{"1h5m", running})...)
			s.Record(history("m2", rec{"1h5m", building}, rec{"1h6m", running})...)
		}, "1h0m0s", false},
		{"a record before creation", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u", CreatedAt: at("3h")})
			s.Record(history("m1", rec{"1h10m", building}, rec{"3h", running})...)
		}, "1h0m0s", true},
		{"history of a deleted machine", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "gone", OwnerID: "u", CreatedAt: at("10m")})
			s.Record(history("gone", rec{"10m", running}, rec{"50m", stopped})...)
			s.DeleteMachine("gone")
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u", CreatedAt: at("3h")})
			s.Record(history("m1", rec{"3h", running})...)
		}, "0s", true},
		{"no creation times", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u"})
			s.Record(history("m1", rec{"4h30m", running})...)
		}, "4h0m0s", true},
		{"created at the record, no record at creation", func(s *fake.Store) {
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u", CreatedAt: at("1h")})
			s.Record(history("m1", rec{"2h", running})...)
		}, "2h0m0s", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := fake.New()
			tc.setup(s)
			q := &queryLog{Store: s}
			p, _ := newProcessor(t, s, "6h")
			p.Collector = &Collector{Machines: q}
			if _, err := p.Process(ctx); err != nil {
				t.Fatal(err)
			}
			ps := s.Periods()
			if len(ps) == 0 || ps[0].Begin.Sub(t0).String() != tc.first {
				t.Fatalf("periods %v, want the first at %s", periodSummary(ps), tc.first)
			}
			whole := slices.ContainsFunc(q.windows, func(w [2]time.Time) bool { return w[0].Equal(time.Unix(0, 0)) })
			if whole && !tc.wholeOK {
				t.Errorf("read the whole history: windows %v", q.windows)
			}
			if !whole && tc.wholeOK {
				t.Errorf("did not read the whole history: windows %v", q.windows)
			}
		})
	}
}

// TestProcessListsMachinesOncePerPass checks that a catch-up of several
// batches lists the scope's machines once, and again only for a machine
// with history that the list lacks.
func TestProcessListsMachinesOncePerPass(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u"})
	s.Record(history("m1", rec{"0s", running})...)
	q := &queryLog{Store: s}
	p, _ := newProcessor(t, s, "20h")
	p.Collector = &Collector{Machines: q}
	p.Scopes = func(context.Context) ([]string, error) { return []string{"u"}, nil }
	p.BatchPeriods = 4
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.Periods()) != 19 || len(q.windows) < 5 {
		t.Fatalf("%d periods in %d history queries", len(s.Periods()), len(q.windows))
	}
	if q.lists != 1 {
		t.Errorf("%d machine lists in one pass, want 1", q.lists)
	}

	// A machine that appears in the history of a later batch, unlisted at
	// the first: listed again once, and described in full.
	s2 := fake.New()
	s2.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u"})
	s2.Record(history("m1", rec{"0s", running})...)
	s2.Record(history("m2", rec{"10h", running})...)
	q2 := &queryLog{Store: s2}
	p2, _ := newProcessor(t, s2, "20h")
	p2.Collector = &Collector{Machines: q2}
	p2.Scopes = func(context.Context) ([]string, error) { return []string{"u"}, nil }
	p2.BatchPeriods = 4
	var once sync.Once
	s2.BeforeCommit = func(rp *store.RatedPeriod) error {
		if rp.Begin.Equal(at("8h")) {
			once.Do(func() { s2.AddMachine(&stack.Machine{ID: "m2", OwnerID: "u", StackID: "st2"}) })
		}
		return nil
	}
	if _, err := p2.Process(ctx); err != nil {
		t.Fatal(err)
	}
	if q2.lists != 2 {
		t.Errorf("%d machine lists, want 2 (the first, and one for m2)", q2.lists)
	}
	for _, rp := range s2.Periods() {
		for _, pt := range rp.Points {
			if pt.Groupby[KeyMachineID] == "m2" && pt.Groupby[KeyStackID] != "st2" {
				t.Fatalf("period %s: m2 described as %v", rp.Begin.Sub(t0), pt.Groupby)
			}
		}
	}
}

// scopeWrites records what a ScopeWriter was asked to write: the scope and
// how far it was rated at each call.
type scopeWrites struct {
	s     *fake.Store
	mu    sync.Mutex
	calls []string
}

func (w *scopeWrites) WriteScope(ctx context.Context, scope string) error {
	st, err := w.s.GetScopeState(ctx, scope)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, scope+" "+st.LastProcessed.Sub(t0).String())
	return nil
}

// TestProcessScopeWriterFollowsCommits: a ScopeWriter is woken once after
// a scope's last commit, which it sees (and while it is rated, once enough
// points are committed); a pass with nothing to rate does not wake it.
func TestProcessScopeWriterFollowsCommits(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u", Provider: "sandbox", Metadata: []byte(`{"size":"small"}`)})
	s.Record(history("m", rec{"0s", running})...)
	p, _ := newProcessor(t, s, "6h")
	w := &scopeWrites{s: s}
	p.ScopeWriter = w
	pass, err := p.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pass.Periods != 5 {
		t.Fatalf("rated %d periods, want 5", pass.Periods)
	}
	if !slices.Equal(w.calls, []string{"u 5h0m0s"}) {
		t.Fatalf("writes %v: want one, after the 5 points, through 5h", w.calls)
	}
	// Woken every 2 points: at least once while rating, then at the end.
	s.AddMachine(&stack.Machine{ID: "m2", OwnerID: "v", Provider: "sandbox", Metadata: []byte(`{"size":"small"}`)})
	s.Record(history("m2", rec{"0s", running})...)
	p.FollowPoints = 2
	w.calls = nil
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	var v []string
	for _, c := range w.calls {
		if strings.HasPrefix(c, "v ") {
			v = append(v, c)
		}
	}
	if len(v) < 2 || v[len(v)-1] != "v 5h0m0s" || !slices.IsSorted(v) {
		t.Fatalf("writes of v woken every 2 points: %v", v)
	}
	w.calls = nil
	if _, err := p.Process(ctx); err != nil {
		t.Fatal(err)
	}
	if len(w.calls) != 0 {
		t.Fatalf("writes of a pass with nothing to rate: %v", w.calls)
	}
}
