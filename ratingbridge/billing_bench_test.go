package ratingbridge

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/ratingbridge/writer"
	"github.com/kloud/kloud/store/sqlite"
)

// BenchmarkBilling bills 10,000 machines end to end on SQLite, as
// POST /api/v1/rating/process does: collect each hourly period from the
// machines' history, rate it with the hashmap module, commit it, and write
// the CSV and JSON reports. It prints points/s (target ≥ 200,000 for the
// month) and the process's peak resident memory while billing (target
// < 150 MiB).
func BenchmarkBilling(b *testing.B) {
	for _, c := range []struct {
		name  string
		hours int
	}{{"day", 24}, {"month", benchHours}} {
		b.Run(c.name, func(b *testing.B) {
			if c.hours > 24 && testing.Short() {
				b.Skip("the month in -short mode")
			}
			benchBilling(b, c.hours)
		})
	}
}

func benchBilling(b *testing.B, hours int) {
	ctx := context.Background()
	start := time.Now()
	hist := sqliteFleet(b, b)
	s := hist.(*sqlite.Store)
	b.Logf("loaded 10,000 machines and a month of history into SQLite in %s", time.Since(start).Round(time.Millisecond))
	svc := &hashmap.Service{Name: ServiceInstance}
	must(b, s.CreateHashmapService(ctx, svc))
	size := &hashmap.Field{ServiceID: svc.ID, Name: KeySize}
	must(b, s.CreateHashmapField(ctx, size))
	for i, sz := range []string{"t3.micro", "t3.small", "t3.large", "m5.xlarge"} {
		must(b, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: size.ID, Value: sz, Type: hashmap.CostFlat, Cost: d(fmt.Sprintf("0.0%d04", i+1))}))
	}
	must(b, s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: svc.ID, Level: d("1"), Type: hashmap.CostRate, Cost: d("0.95")}))
	pipe, err := NewPipeline(s, DefaultModules(s)...)
	must(b, err)
	proc := &Processor{Collector: &Collector{Machines: s}, Pipeline: pipe, Store: s, Scopes: OwnerScopes(s, s),
		WaitPeriods: -1, Clock: func() time.Time { return t0.Add(time.Duration(hours) * time.Hour) }, Logger: quiet}
	reports := b.TempDir()
	writers := writer.New(s, s, reports)
	// As kloud serve's rater: the reports follow the commits.
	proc.ScopeWriter = writers

	runtime.GC()
	debug.FreeOSMemory()
	testenv.ResetPeakMemory()
	rss0 := testenv.MemoryMiB(0, "VmRSS")
	b.ResetTimer()
	cpu0 := testenv.CPUTime()
	began := time.Now()
	pass, err := proc.Process(ctx)
	must(b, err)
	rated := time.Since(began) // the reports follow: most are written by now
	must(b, writers.WriteAll(ctx))
	total := time.Since(began)
	cpu := testenv.CPUTime() - cpu0
	b.StopTimer()
	peak := testenv.MemoryMiB(0, "VmHWM")
	pps := float64(pass.Points) / total.Seconds()
	b.ReportMetric(pps, "points/s")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(total.Seconds(), "s")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	// On a shared machine the wall time includes waiting for a core; the
	// CPU time (both cores, garbage collection included) does not.
	b.Logf("billing %d h of 10,000 machines on SQLite: %d points in %s (collect+rate+commit, reports following, %s; the reports' end %s): %.0f points/s (target ≥ 200,000), %.1f s of CPU (%.0f points per CPU second); resident %.0f MiB before, peak %.0f MiB (target < 150 MiB)",
		hours, pass.Points, total.Round(time.Millisecond), rated.Round(time.Millisecond), (total - rated).Round(time.Millisecond), pps, cpu.Seconds(), float64(pass.Points)/cpu.Seconds(), rss0, peak)
}
