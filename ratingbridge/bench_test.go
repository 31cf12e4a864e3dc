package ratingbridge

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to bulk-load history

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store/sqlite"
)

const (
	benchMachines = 10000
	benchHours    = 720 // a month
	benchOwner    = "u-bench"
)

// benchFleet is 10,000 machines of one owner and a month of their history:
// each starts Running or Stopped an hour before the month and changes
// state every 1 to 12 hours (about 110 records per machine).
func benchFleet() ([]*stack.Machine, []stack.StateRecord) {
	rnd := rand.New(rand.NewPCG(7, 7))
	sizes := []string{"t3.micro", "t3.small", "t3.large", "m5.xlarge"}
	end := t0.Add(benchHours * time.Hour)
	var machines []*stack.Machine
	var recs []stack.StateRecord
	for i := range benchMachines {
		id := fmt.Sprintf("m-%05d", i)
		machines = append(machines, &stack.Machine{ID: id, StackID: fmt.Sprintf("st-%04d", i/10), OwnerID: benchOwner, Provider: "aws",
			Label: fmt.Sprintf("aws_instance.web[%d]", i%10), CreatedAt: t0.Add(-time.Hour),
			Metadata: []byte(fmt.Sprintf(`{"instance_type":%q,"availability_zone":"us-east-1a","ami":"ami-0abc"}`, sizes[i%len(sizes)]))})
		state := machinestate.Running
		if rnd.IntN(2) == 0 {
			state = machinestate.Stopped
		}
		machines[i].State = state
		for at := t0.Add(-time.Hour); at.Before(end); at = at.Add(time.Duration(1+rnd.IntN(11*60)) * time.Minute) {
			recs = append(recs, stack.StateRecord{MachineID: id, State: state, At: at})
			if state == machinestate.Running {
				state = machinestate.Stopped
			} else {
				state = machinestate.Running
			}
		}
	}
	return machines, recs
}

func fakeFleet(b *testing.B) *fake.Store {
	machines, recs := benchFleet()
	s := fake.New()
	for _, m := range machines {
		s.AddMachine(m)
	}
	s.Record(recs...)
	return s
}

// sqliteFleet loads the fleet into a SQLite store that lives as long as
// owner.
func sqliteFleet(b *testing.B, owner testing.TB) HistorySource {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, owner.TempDir(), sqlite.WithLogger(quiet))
	must(b, err)
	owner.Cleanup(func() { s.Close() })
	machines, recs := benchFleet()
	for _, m := range machines {
		// PutMachine records the machine's first state at CreatedAt.
		must(b, s.PutMachine(ctx, m))
	}
	// The remaining history in one transaction (a fixture: the machine API
	// writes one change per transaction).
	db, err := sql.Open("sqlite", s.Path()+"?_pragma=busy_timeout(10000)")
	must(b, err)
	defer db.Close()
	tx, err := db.Begin()
	must(b, err)
	stmt, err := tx.Prepare(`INSERT INTO machine_history (machine_id, state, reason, at) VALUES (?, ?, '', ?)`)
	must(b, err)
	first := map[string]bool{}
	for _, r := range recs {
		if !first[r.MachineID] {
			first[r.MachineID] = true
			continue
		}
		_, err := stmt.Exec(r.MachineID, int(r.State), r.At.UnixNano())
		must(b, err)
	}
	must(b, stmt.Close())
	must(b, tx.Commit())
	return s
}

func benchCollect(b *testing.B, src HistorySource, periods int) {
	ctx := context.Background()
	c := &Collector{Machines: src}
	begin := t0.Add(time.Duration(benchHours-periods) * time.Hour)
	points, batches := 0, 0
	cpu0 := testenv.CPUTime()
	b.ResetTimer()
	for b.Loop() {
		points, batches = 0, 0
		// As Processor.processScope does: one scope collection for every
		// batch of the catch-up, batches sized by DefaultBatchPeriods and
		// maxBatchPoints.
		sc := c.scope(benchOwner)
		for p := 0; p < periods; {
			frames, err := sc.batch(ctx, begin.Add(time.Duration(p)*time.Hour), time.Hour, periods-p, DefaultBatchPeriods)
			if err != nil {
				b.Fatal(err)
			}
			p += len(frames)
			batches++
			for _, f := range frames {
				points += f.Len()
			}
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/collection")
	// On a shared machine wall time includes waiting for a core; the CPU
	// time the process used (garbage collection included) does not.
	b.ReportMetric((testenv.CPUTime()-cpu0).Seconds()/float64(b.N), "cpu-s/collection")
	b.ReportMetric(float64(points)/sec, "points/s")
	b.ReportMetric(float64(benchMachines*periods)/sec, "machine-periods/s")
	b.ReportMetric(float64(batches), "batches")
}

// BenchmarkCollect collects 10,000 machines whose store holds a month of
// history (about 1.1 million records): one hourly period, as every tick
// does, and the whole month (720 periods in batches of at most
// DefaultBatchPeriods and about maxBatchPoints points), as a processor
// catching up does. Target: under 2 s.
func BenchmarkCollect(b *testing.B) {
	b.Run("fake/hour", func(b *testing.B) { benchCollect(b, fakeFleet(b), 1) })
	b.Run("fake/month", func(b *testing.B) { benchCollect(b, fakeFleet(b), benchHours) })
	if testing.Short() {
		return
	}
	parent := b
	var s HistorySource
	get := func(b *testing.B) HistorySource {
		if s == nil {
			start := time.Now()
			s = sqliteFleet(b, parent)
			b.Logf("loaded 10,000 machines and a month of history into SQLite in %s", time.Since(start).Round(time.Millisecond))
		}
		return s
	}
	b.Run("sqlite/hour", func(b *testing.B) { benchCollect(b, get(b), 1) })
	b.Run("sqlite/month", func(b *testing.B) { benchCollect(b, get(b), benchHours) })
}
