package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	box, err := secretbox.FromPassphrase("bench")
	if err != nil {
		b.Fatal(err)
	}
	return openTest(b, b.TempDir(), WithBox(box), WithLogger(slog.New(slog.DiscardHandler)))
}

// bulk runs fn in one write transaction, for fast fixture loading.
func bulk(b testing.TB, s *Store, fn func(tx *sql.Tx) error) {
	b.Helper()
	if err := s.write(context.Background(), fn); err != nil {
		b.Fatal(err)
	}
}

var benchT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports the CPU time per op next to the wall time: on a shared
// machine the wall time also counts other processes' turns.
func cpuMeter(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

func BenchmarkClaimJob(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	bulk(b, s, func(tx *sql.Tx) error {
		stmt, err := tx.Prepare(`INSERT INTO jobs (id, kind, owner_id, target, status, created_at) VALUES (?, 'apply', 'usr-1', ?, 'queued', ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range b.N {
			if _, err := stmt.Exec(fmt.Sprintf("job-%09d", i), fmt.Sprintf("stack/%d", i), benchT0.Add(time.Duration(i)).UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
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
func loadMachines(b *testing.B, s *Store, n, days int) { loadMachinesT(b, s, n, days) }

func loadMachinesT(b testing.TB, s *Store, n, days int) {
	b.Helper()
	bulk(b, s, func(tx *sql.Tx) error {
		m, err := tx.Prepare(`INSERT INTO machines (id, stack_id, owner_id, provider, label, state, always_on, metadata, created_at, updated_at)
			VALUES (?, ?, ?, 'sandbox', ?, ?, 0, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer m.Close()
		h, err := tx.Prepare(`INSERT INTO machine_history (machine_id, state, reason, at) VALUES (?, ?, '', ?)`)
		if err != nil {
			return err
		}
		defer h.Close()
		for i := range n {
			id := fmt.Sprintf("m-%06d", i)
			created := benchT0.Add(time.Duration(i) * time.Millisecond)
			if _, err := m.Exec(id, fmt.Sprintf("stk-%d", i/10), fmt.Sprintf("usr-%d", i%10), "sandbox_machine.web["+fmt.Sprint(i%10)+"]",
				int(machinestate.Running), `{"size":"small","region":"local","image":"ubuntu-24.04"}`, created.UnixNano(), created.UnixNano()); err != nil {
				return err
			}
			if _, err := h.Exec(id, int(machinestate.Running), created.UnixNano()); err != nil {
				return err
			}
			for d := range days {
				day := created.Add(time.Duration(d) * 24 * time.Hour)
				for k, st := range []machinestate.State{machinestate.Stopped, machinestate.Running, machinestate.Stopped, machinestate.Running} {
					at := day.Add(time.Duration(3+5*k)*time.Hour + time.Duration(i)*time.Second)
					if _, err := h.Exec(id, int(st), at.UnixNano()); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
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

func BenchmarkStateHistory10kMonth(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	loadMachines(b, s, 10000, 30) // 10,000 × 121 records = 1.21 M
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
	const machines, hours = 50, 720
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
