package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// BenchBackend is what a backend gives the benchmark suite: fresh stores,
// and loaders that store the large fixtures directly (through the store's
// own API they would take longer than the benchmarks).
type BenchBackend struct {
	// Open returns a fresh, empty store and closes it when tb ends.
	Open func(tb testing.TB) store.Store
	// QueueJobs stores the n queued jobs BenchQueuedJob describes.
	QueueJobs func(tb testing.TB, s store.Store, n int)
	// LoadMachines stores the machines and histories BenchFleet yields,
	// as PutMachine and SetMachineState would have.
	LoadMachines func(tb testing.TB, s store.Store, n, days int)
	// SummarizeHours is how many hourly periods of 50 machines
	// SummarizeMonthHourly commits (720, a month, when 0).
	SummarizeHours int
	// SkipStateHistory, when not empty, says why StateHistory10kMonth
	// cannot run on this backend.
	SkipStateHistory string
}

// BenchT0 is when the benchmark fixtures begin.
var BenchT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchQueuedJob is queued job i of the QueueJobs fixture: owner usr-1,
// target stack/<i>, created i nanoseconds after BenchT0, so they are
// claimed in order.
func BenchQueuedJob(i int) *jobs.Job {
	return &jobs.Job{ID: fmt.Sprintf("job-%09d", i), Kind: jobs.KindApply, OwnerID: "usr-1", Target: fmt.Sprintf("stack/%d", i),
		Status: jobs.StatusQueued, CreatedAt: BenchT0.Add(time.Duration(i))}
}

// BenchFleet yields the LoadMachines fixture: n machines of 10 owners (and
// n/10 stacks), each created Running (its first history record, at
// CreatedAt) and then, for `days` days, stopped and started twice a day
// (later, in time order). StateSince and UptimeBase are the machine's
// after later.
func BenchFleet(n, days int, yield func(m *stack.Machine, later []stack.StateRecord) error) error {
	cycle := []machinestate.State{machinestate.Stopped, machinestate.Running, machinestate.Stopped, machinestate.Running}
	later := make([]stack.StateRecord, 0, len(cycle)*days)
	for i := range n {
		created := BenchT0.Add(time.Duration(i) * time.Millisecond)
		m := &stack.Machine{ID: fmt.Sprintf("m-%06d", i), StackID: fmt.Sprintf("stk-%d", i/10), OwnerID: fmt.Sprintf("usr-%d", i%10),
			Provider: "sandbox", Label: fmt.Sprintf("sandbox_machine.web[%d]", i%10), State: machinestate.Running,
			Metadata: []byte(`{"size":"small","region":"local","image":"ubuntu-24.04"}`), CreatedAt: created, UpdatedAt: created}
		later = later[:0]
		state, since, base := m.State, created, time.Duration(0)
		for d := range days {
			day := created.Add(time.Duration(d) * 24 * time.Hour)
			for k, st := range cycle {
				at := day.Add(time.Duration(3+5*k)*time.Hour + time.Duration(i)*time.Second)
				later = append(later, stack.StateRecord{MachineID: m.ID, State: st, At: at})
				if state == machinestate.Running && at.After(since) {
					base += at.Sub(since)
				}
				state, since = st, at
			}
		}
		m.StateSince, m.UptimeBase = since, base
		if err := yield(m, later); err != nil {
			return err
		}
	}
	return nil
}

// Bench runs every store benchmark against the backend be describes, as
// sub-benchmarks of b named as the benchmarks they replace ("ClaimJob",
// "ListMachines10k/all", …), so both backends print the same rows side by
// side. Like every benchmark here, they report figures and assert nothing
// about time.
func Bench(b *testing.B, be BenchBackend) {
	benches := []struct {
		name string
		run  func(b *testing.B, be BenchBackend)
	}{
		{"ClaimJob", benchClaimJob},
		{"AppendEvent", benchAppendEvent},
		{"RenewJobLease", benchRenewJobLease},
		{"ListMachines10k", benchListMachines10k},
		{"StateHistory10kMonth", benchStateHistory10kMonth},
		{"SummarizeMonthHourly", benchSummarizeMonthHourly},
		{"CommitRatedPeriod", benchCommitRatedPeriod},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) { bb.run(b, be) })
	}
}

// cpuMeter reports the CPU time per op next to the wall time: on a shared
// machine the wall time also counts other processes' turns (and with an
// embedded server, such as the test FerretDB, the server's share is
// included).
func cpuMeter(b *testing.B) func() {
	start := testenv.CPUTime()
	return func() {
		b.ReportMetric(float64((testenv.CPUTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

// perOp reports the wall time per op in µs under unit.
func perOp(b *testing.B, unit string) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), unit)
}

// timeOps times b.N calls of op (from here: setup before is not counted)
// and reports the wall time per op in µs under unit.
func timeOps(b *testing.B, unit string, op func(i int) error) {
	b.ResetTimer()
	defer cpuMeter(b)()
	for i := range b.N {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	perOp(b, unit)
}

func benchClaimJob(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	be.QueueJobs(b, s, b.N)
	timeOps(b, "µs/claim", func(int) error {
		_, err := s.ClaimJob(context.Background(), "w1", BenchT0, time.Minute, 0)
		return err
	})
}

// runningJob creates and claims one job for worker w1.
func runningJob(b testing.TB, s store.Store) *jobs.Job {
	ctx := context.Background()
	j := &jobs.Job{Kind: jobs.KindApply, Target: "stack/1"}
	if err := s.CreateJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	if _, err := s.ClaimJob(ctx, "w1", BenchT0, time.Minute, 0); err != nil {
		b.Fatal(err)
	}
	return j
}

func benchAppendEvent(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	j := runningJob(b, s)
	timeOps(b, "µs/append", func(i int) error {
		return s.AppendEvents(context.Background(), j.ID,
			&jobs.Event{Kind: jobs.EventOutput, Message: "aws_instance.web: Still creating... [10s elapsed]", Percentage: i % 100})
	})
}

// benchRenewJobLease is the call a running job makes every lease/3.
func benchRenewJobLease(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	j := runningJob(b, s)
	timeOps(b, "µs/renew", func(i int) error {
		return s.RenewJobLease(context.Background(), j.ID, "w1", BenchT0.Add(time.Duration(i)*time.Second), time.Minute)
	})
}

func benchListMachines10k(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	be.LoadMachines(b, s, 10000, 0)
	ctx := context.Background()
	list := func(b *testing.B, f store.MachineFilter, want int) {
		ms, err := s.ListMachines(ctx, f)
		if err != nil || len(ms) != want {
			b.Fatal(len(ms), err)
		}
	}
	b.Run("all", func(b *testing.B) {
		defer cpuMeter(b)()
		for b.Loop() {
			list(b, store.MachineFilter{}, 10000)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	})
	b.Run("owner", func(b *testing.B) {
		defer cpuMeter(b)()
		for b.Loop() {
			list(b, store.MachineFilter{OwnerID: "usr-3"}, 1000)
		}
		perOp(b, "µs/list")
	})
	b.Run("get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.GetMachine(ctx, fmt.Sprintf("m-%06d", i%10000)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		perOp(b, "µs/get")
	})
	// 50 clients listing every machine at once: the p99 of one list.
	b.Run("all-50-clients", func(b *testing.B) {
		var mu sync.Mutex
		var lat []time.Duration
		b.SetParallelism(25) // × GOMAXPROCS (2) = 50 goroutines
		b.RunParallel(func(pb *testing.PB) {
			var mine []time.Duration
			for pb.Next() {
				start := time.Now()
				if _, err := s.ListMachines(ctx, store.MachineFilter{}); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
		if len(lat) > 0 {
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		}
	})
}

func benchStateHistory10kMonth(b *testing.B, be BenchBackend) {
	if be.SkipStateHistory != "" {
		b.Skip(be.SkipStateHistory)
	}
	s := be.Open(b)
	be.LoadMachines(b, s, 10000, 30) // 10,000 × 121 records = 1.21 M
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		from, to time.Time
		owner    string
	}{
		{"hour", BenchT0.Add(15*24*time.Hour + 5*time.Hour), BenchT0.Add(15*24*time.Hour + 6*time.Hour), ""},
		{"day", BenchT0.Add(15 * 24 * time.Hour), BenchT0.Add(16 * 24 * time.Hour), ""},
		{"month", BenchT0, BenchT0.Add(31 * 24 * time.Hour), ""},
		{"month-one-owner", BenchT0, BenchT0.Add(31 * 24 * time.Hour), "usr-3"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			defer cpuMeter(b)()
			for b.Loop() {
				recs, err := s.StateHistory(ctx, store.HistoryQuery{OwnerID: c.owner, From: c.from, To: c.to})
				if err != nil {
					b.Fatal(err)
				}
				n = len(recs)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
			b.ReportMetric(float64(n), "records")
		})
	}
}

// ratedPoint is the benchmarks' rated point of machine m.
func ratedPoint(m int, qty, price string, groupby, metadata map[string]string) store.RatedPoint {
	groupby["machine_id"] = fmt.Sprintf("m-%03d", m)
	return store.RatedPoint{Service: "instance", Unit: "hour", Qty: decimal.RequireFromString(qty), Price: decimal.RequireFromString(price),
		Groupby: groupby, Metadata: metadata}
}

func benchSummarizeMonthHourly(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	ctx := context.Background()
	machines, hours := 50, be.SummarizeHours
	if hours <= 0 {
		hours = 720
	}
	for h := range hours {
		begin := BenchT0.Add(time.Duration(h) * time.Hour)
		p := &store.RatedPeriod{Scope: "usr-1", Begin: begin, End: begin.Add(time.Hour)}
		for m := range machines {
			p.Points = append(p.Points, ratedPoint(m, "0.5", "0.0123",
				map[string]string{"stack_id": fmt.Sprintf("stk-%d", m/5), "owner": "usr-1"},
				map[string]string{"size": []string{"small", "medium", "large"}[m%3], "region": "local"}))
		}
		if err := s.CommitRatedPeriod(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		groupby []string
		limit   int
	}{
		{"total", nil, 0},
		{"type", []string{"type"}, 0},
		{"time-d", []string{"time-d"}, 0},
		{"machine_id", []string{"machine_id"}, 0},
		{"size-metadata", []string{"size"}, 0},
		{"time-page-of-100", []string{"time"}, 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			defer cpuMeter(b)()
			for b.Loop() {
				sum, err := s.Summarize(ctx, store.SummaryQuery{Scope: "usr-1", GroupBy: c.groupby, Limit: c.limit})
				if err != nil || sum.Total == 0 {
					b.Fatal(sum, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/summary")
			b.ReportMetric(float64(machines*hours), "points")
		})
	}
}

func benchCommitRatedPeriod(b *testing.B, be BenchBackend) {
	s := be.Open(b)
	pts := make([]store.RatedPoint, 100)
	for m := range pts {
		pts[m] = ratedPoint(m, "1", "0.01", map[string]string{}, map[string]string{"size": "small"})
	}
	timeOps(b, "µs/period-of-100", func(i int) error {
		begin := BenchT0.Add(time.Duration(i) * time.Hour)
		return s.CommitRatedPeriod(context.Background(), &store.RatedPeriod{Scope: "usr-1", Begin: begin, End: begin.Add(time.Hour), Points: pts})
	})
}

// RunBenchFixtures checks that the backend's fixture loaders store what
// the store's own API would: the queued jobs are claimed in order, and
// each machine reads back with its state and its whole history.
func RunBenchFixtures(t *testing.T, be BenchBackend) {
	t.Run("QueueJobs", func(t *testing.T) {
		s := be.Open(t)
		be.QueueJobs(t, s, 3)
		for i := range 3 {
			want := BenchQueuedJob(i)
			j, err := s.ClaimJob(t.Context(), "w1", BenchT0, time.Minute, 0)
			ok(t, err)
			eq(t, "claimed", j.ID, want.ID)
			eq(t, "target", j.Target, want.Target)
			eq(t, "owner", j.OwnerID, want.OwnerID)
			sameTime(t, "created_at", j.CreatedAt, want.CreatedAt)
		}
	})
	t.Run("LoadMachines", func(t *testing.T) {
		s := be.Open(t)
		be.LoadMachines(t, s, 12, 2)
		ms, err := s.ListMachines(t.Context(), store.MachineFilter{OwnerID: "usr-3"})
		ok(t, err)
		eq(t, "machines of usr-3", len(ms), 1)
		ok(t, BenchFleet(12, 2, func(want *stack.Machine, later []stack.StateRecord) error {
			got, err := s.GetMachine(t.Context(), want.ID)
			ok(t, err)
			eq(t, "stack", got.StackID, want.StackID)
			eq(t, "owner", got.OwnerID, want.OwnerID)
			eq(t, "label", got.Label, want.Label)
			eq(t, "metadata", string(got.Metadata), string(want.Metadata))
			eq(t, "state", got.State, later[len(later)-1].State)
			sameTime(t, "created_at", got.CreatedAt, want.CreatedAt)
			sameTime(t, "state since", got.StateSince, want.StateSince)
			eq(t, "uptime base", got.UptimeBase, want.UptimeBase)
			hist, err := s.MachineHistory(t.Context(), want.ID)
			ok(t, err)
			all := append([]stack.StateRecord{{MachineID: want.ID, State: want.State, At: want.CreatedAt}}, later...)
			eq(t, "history records", len(hist), len(all))
			for i := range min(len(hist), len(all)) {
				eq(t, "history state", hist[i].State, all[i].State)
				sameTime(t, "history at", hist[i].At, all[i].At)
			}
			return nil
		}))
	})
}
