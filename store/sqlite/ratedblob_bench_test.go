package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/store"
)

// benchPeriod is an hour of 10,000 machines as the rating bridge commits
// it: one instance point each, with the collector's groupby and metadata.
func benchPeriod() (*store.RatedPeriod, store.PeriodWrite) {
	begin := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &store.RatedPeriod{Scope: "u-bench", Begin: begin, End: begin.Add(time.Hour)}
	sizes := []string{"t3.micro", "t3.small", "t3.large", "m5.xlarge"}
	for i := range 10000 {
		p.Points = append(p.Points, store.RatedPoint{
			Service: "instance", Unit: "hour", Qty: decimal.New(1, 0), Price: decimal.New(int64(104+i%4*100), -4),
			Groupby: map[string]string{"machine_id": fmt.Sprintf("m-%05d", i), "stack_id": fmt.Sprintf("st-%04d", i/10), "provider": "aws", "owner": "u-bench"},
			Metadata: map[string]string{"size": sizes[i%4], "region": "us-east-1a", "image": "ami-0abc",
				"label": fmt.Sprintf("aws_instance.web[%d]", i%10)},
		})
	}
	return p, store.PeriodWrite{Begin: begin.UnixNano(), End: begin.Add(time.Hour).UnixNano()}
}

// BenchmarkEncodePeriod: a period of 10,000 points to its stored form.
func BenchmarkEncodePeriod(b *testing.B) {
	p, w := benchPeriod()
	b.ReportAllocs()
	cpu := testenv.CPUTime()
	for b.Loop() {
		if _, err := encodePeriod(p, w); err != nil {
			b.Fatal(err)
		}
	}
	reportPerPoint(b, cpu, len(p.Points))
}

// BenchmarkDecodePeriod: a stored period of 10,000 points back to the
// points RatedPoints returns.
func BenchmarkDecodePeriod(b *testing.B) {
	p, w := benchPeriod()
	row, err := encodePeriod(p, w)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := testenv.CPUTime()
	for b.Loop() {
		pb, err := decodePeriod(row.data, row.begin, row.end)
		if err != nil {
			b.Fatal(err)
		}
		for i := range pb.points {
			if _, err := pb.ratedPoint("u-bench", &pb.points[i], nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportPerPoint(b, cpu, len(p.Points))
}

// reportPerPoint reports the wall and CPU nanoseconds per point of b's
// loop over periods of n points, its CPU counted from cpu0.
func reportPerPoint(b *testing.B, cpu0 time.Duration, n int) {
	points := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/points, "ns/point")
	b.ReportMetric(float64((testenv.CPUTime()-cpu0).Nanoseconds())/points, "cpu-ns/point")
}
