package mongo

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/store"
)

// The benchmarks mirror store/sqlite's (same names, same data, same
// metrics) so `go test -bench . ./store/...` prints both side by side. They
// run against the embedded FerretDB (a Go process translating every
// command to SQLite, in this same process), or against the MongoDB that
// KLOUD_TEST_MONGO_URI names.

var benchT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func benchStore(b *testing.B) *Store {
	b.Helper()
	if uri := realMongoURI(b); uri != "" {
		return openTest(b, uri)
	}
	srv := ferrettest.Start(b)
	return openTest(b, srv.NewDatabaseURI("bench"), WithTimeout(5*time.Minute))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports this process's CPU time per op (with the embedded
// FerretDB, the server's share is included).
func cpuMeter(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

func BenchmarkClaimJob(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	docs := make([]any, b.N)
	for i := range b.N {
		docs[i] = jobDoc{ID: fmt.Sprintf("job-%09d", i), Kind: "apply", OwnerID: "usr-1", Target: fmt.Sprintf("stack/%d", i), TSeq: 1,
			CreatedAt: benchT0.Add(time.Duration(i)).UnixNano(), Ord: ord(), St: string(store.JobQueued)}
	}
	if _, err := s.jobs.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	defer cpuMeter(b)()
	for range b.N {
		if _, err := s.ClaimJob(ctx, "w1", benchT0, time.Minute, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/claim")
}

func BenchmarkAppendEvent(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	j := &store.Job{Kind: store.JobApply, Target: "stack/1"}
	if err := s.CreateJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	defer cpuMeter(b)()
	for i := range b.N {
		if err := s.AppendEvents(ctx, j.ID, &store.Event{Kind: store.EventOutput, Message: "aws_instance.web: Still creating... [10s elapsed]", Percentage: i % 100}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/append")
}

// loadMachines inserts n machines of 10 owners, each with the history
// records of `days` days of two starts and two stops a day.
func loadMachines(b *testing.B, s *Store, n, days int) {
	b.Helper()
	ctx := context.Background()
	var ms, hs []any
	flush := func(force bool) {
		if len(ms) >= 2000 || (force && len(ms) > 0) {
			if _, err := s.machines.InsertMany(ctx, ms); err != nil {
				b.Fatal(err)
			}
			ms = ms[:0]
		}
		if len(hs) >= 5000 || (force && len(hs) > 0) {
			if _, err := s.history.InsertMany(ctx, hs); err != nil {
				b.Fatal(err)
			}
			hs = hs[:0]
		}
	}
	for i := range n {
		id := fmt.Sprintf("m-%06d", i)
		created := benchT0.Add(time.Duration(i) * time.Millisecond)
		owner, stk := fmt.Sprintf("usr-%d", i%10), fmt.Sprintf("stk-%d", i/10)
		ms = append(ms, machineDoc{ID: id, StackID: stk, OwnerID: owner, Provider: "sandbox",
			Label: "sandbox_machine.web[" + fmt.Sprint(i%10) + "]", Metadata: `{"size":"small","region":"local","image":"ubuntu-24.04"}`,
			AgentTokenHash: emptyKey(id), CreatedAt: created.UnixNano(), UpdatedAt: created.UnixNano(),
			Init: stateRec{State: int(machinestate.Running), At: created.UnixNano()}})
		h := head{v: 1, state: machinestate.Running, since: created.UnixNano()}
		var prev *historyDoc
		for d := range days {
			day := created.Add(time.Duration(d) * 24 * time.Hour)
			for k, st := range []machinestate.State{machinestate.Stopped, machinestate.Running, machinestate.Stopped, machinestate.Running} {
				at := day.Add(time.Duration(3+5*k)*time.Hour + time.Duration(i)*time.Second).UnixNano()
				base := h.base
				if h.state == machinestate.Running && at > h.since {
					base += at - h.since
				}
				rec := historyDoc{ID: historyID(id, h.v+1), M: id, V: h.v + 1, O: owner, S: stk, State: int(st), At: at,
					Since: max(h.since, at), Base: base, Head: true, NextAt: 1<<63 - 1}
				if prev != nil {
					prev.Head, prev.NextAt = false, at
				}
				hs = append(hs, &rec)
				prev = &rec
				h = head{v: rec.V, state: st, since: rec.Since, base: base}
			}
		}
		flush(false)
	}
	flush(true)
}

func BenchmarkListMachines10k(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	loadMachines(b, s, 10000, 0)
	b.Run("all", func(b *testing.B) {
		defer cpuMeter(b)()
		for b.Loop() {
			ms, err := s.ListMachines(ctx, store.MachineFilter{})
			if err != nil || len(ms) != 10000 {
				b.Fatal(len(ms), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/list")
	})
	b.Run("owner", func(b *testing.B) {
		defer cpuMeter(b)()
		for b.Loop() {
			ms, err := s.ListMachines(ctx, store.MachineFilter{OwnerID: "usr-3"})
			if err != nil || len(ms) != 1000 {
				b.Fatal(len(ms), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/list")
	})
	b.Run("get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.GetMachine(ctx, fmt.Sprintf("m-%06d", i%10000)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/get")
	})
	b.Run("all-50-clients", func(b *testing.B) {
		var mu sync.Mutex
		var lat []time.Duration
		b.SetParallelism(25)
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

func BenchmarkStateHistory10kMonth(b *testing.B) {
	if os.Getenv(EnvMongoURI) == "" {
		// 1.21 million history documents take the embedded FerretDB (one
		// SQLite transaction per insert batch, every query a collection
		// scan) longer to load than a benchmark run should last.
		b.Skipf("needs a real MongoDB: set %s", EnvMongoURI)
	}
	s := benchStore(b)
	ctx := context.Background()
	loadMachines(b, s, 10000, 30)
	for _, c := range []struct {
		name     string
		from, to time.Time
		owner    string
	}{
		{"hour", benchT0.Add(15*24*time.Hour + 5*time.Hour), benchT0.Add(15*24*time.Hour + 6*time.Hour), ""},
		{"day", benchT0.Add(15 * 24 * time.Hour), benchT0.Add(16 * 24 * time.Hour), ""},
		{"month", benchT0, benchT0.Add(31 * 24 * time.Hour), ""},
		{"month-one-owner", benchT0, benchT0.Add(31 * 24 * time.Hour), "usr-3"},
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

func BenchmarkSummarizeMonthHourly(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	// A month of hourly frames of 50 machines, as for SQLite. The embedded
	// FerretDB takes minutes to load and to summarize 36,000 points, so
	// without a real MongoDB the benchmark covers three days (3,600
	// points); the points metric says which ran.
	machines, hours := 50, 720
	if os.Getenv(EnvMongoURI) == "" {
		hours = 72
	}
	for h := range hours {
		begin := benchT0.Add(time.Duration(h) * time.Hour)
		p := &store.RatedPeriod{Scope: "usr-1", Begin: begin, End: begin.Add(time.Hour)}
		for m := range machines {
			p.Points = append(p.Points, store.RatedPoint{Service: "instance", Unit: "hour",
				Qty: decimal.RequireFromString("0.5"), Price: decimal.RequireFromString("0.0123"),
				Groupby:  map[string]string{"machine_id": fmt.Sprintf("m-%02d", m), "stack_id": fmt.Sprintf("stk-%d", m/5), "owner": "usr-1"},
				Metadata: map[string]string{"size": []string{"small", "medium", "large"}[m%3], "region": "local"}})
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

func BenchmarkCommitRatedPeriod(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	pts := make([]store.RatedPoint, 100)
	for m := range pts {
		pts[m] = store.RatedPoint{Service: "instance", Unit: "hour", Qty: decimal.RequireFromString("1"), Price: decimal.RequireFromString("0.01"),
			Groupby: map[string]string{"machine_id": fmt.Sprintf("m-%03d", m)}, Metadata: map[string]string{"size": "small"}}
	}
	b.ResetTimer()
	defer cpuMeter(b)()
	for i := range b.N {
		begin := benchT0.Add(time.Duration(i) * time.Hour)
		if err := s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "usr-1", Begin: begin, End: begin.Add(time.Hour), Points: pts}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/period-of-100")
}

// BenchmarkRenewJobLease is the call a running job makes every lease/3.
func BenchmarkRenewJobLease(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	j := &store.Job{Kind: store.JobApply, Target: "stack/1"}
	if err := s.CreateJob(ctx, j); err != nil {
		b.Fatal(err)
	}
	if _, err := s.ClaimJob(ctx, "w1", benchT0, time.Minute, 0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	defer cpuMeter(b)()
	for i := range b.N {
		if err := s.RenewJobLease(ctx, j.ID, "w1", benchT0.Add(time.Duration(i)*time.Second), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/renew")
}
