package hashmap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/ratingbridge/dataframe"
)

// benchRules is a realistic instance price list: a flat hourly price per
// size, a rate per region, a per-provider fee in its own group and volume
// discounts on qty.
func benchRules(b testing.TB) *Rules {
	var r rb
	s := r.service("instance")
	size := r.field(s, "size")
	region := r.field(s, "region")
	provider := r.field(s, "provider")
	fees := r.group("provider_fee")
	for i, sz := range []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge"} {
		r.fieldMapping(size, "", sz, "flat", decimal.New(52, -4).Mul(decimal.New(1<<i, 0)).String())
	}
	for reg, rate := range map[string]string{"us-east-1": "1", "eu-west-1": "1.12", "ap-south-1": "0.93", "sa-east-1": "1.37"} {
		r.fieldMapping(region, "", reg, "rate", rate)
	}
	r.fieldMapping(provider, fees, "aws", "flat", "0.0005")
	r.fieldMapping(provider, fees, "digitalocean", "flat", "0.0002")
	r.svcThreshold(s, "", "50", "rate", "0.98")
	r.svcThreshold(s, "", "200", "rate", "0.95")
	rules, err := Compile(&r.r)
	if err != nil {
		b.Fatal(err)
	}
	return rules
}

// benchFrame returns n instance points of 10,000 machines: four in five ran
// the whole hour, the others part of it (qty to 9 places, as the collector
// computes it).
func benchFrame(n int) *dataframe.DataFrame {
	rnd := rand.New(rand.NewPCG(1, 2))
	sizes := []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge"}
	regions := []string{"us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"}
	providers := []string{"aws", "digitalocean", "sandbox"}
	const machines = 10000
	type desc struct{ groupby, metadata map[string]string }
	descs := make([]desc, machines)
	for i := range descs {
		p := providers[rnd.IntN(len(providers))]
		descs[i] = desc{
			groupby: map[string]string{"machine_id": fmt.Sprintf("m-%05d", i), "stack_id": fmt.Sprintf("s-%04d", i/10), "provider": p, "owner": fmt.Sprintf("u-%03d", i/100)},
			metadata: map[string]string{"size": sizes[rnd.IntN(len(sizes))], "region": regions[rnd.IntN(len(regions))],
				"image": "ubuntu-24.04", "label": fmt.Sprintf("%s_instance.web[%d]", p, i%10)},
		}
	}
	hour := decimal.NewFromInt(3600)
	partial := make([]decimal.Decimal, 3599)
	for s := range partial {
		partial[s] = decimal.NewFromInt(int64(s+1)).DivRound(hour, 9)
	}
	one := decimal.NewFromInt(1)
	pts := make([]dataframe.DataPoint, n)
	for i := range pts {
		d := descs[i%machines]
		q := one
		if rnd.IntN(5) == 0 {
			q = partial[rnd.IntN(len(partial))]
		}
		pts[i] = dataframe.DataPoint{Unit: "hour", Qty: q, Groupby: d.groupby, Metadata: d.metadata}
	}
	f := dataframe.New(timeAt(0), timeAt(1))
	f.Usage["instance"] = pts
	return f
}

func benchPrice(b *testing.B, n int, noFast bool) {
	rules := benchRules(b)
	f := benchFrame(n)
	pts := f.Usage["instance"]
	ctx := context.Background()
	b.ReportAllocs()
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range pts {
			pts[i].Price = decimal.Decimal{}
		}
		p := rules.NewPricer()
		p.noFast = noFast
		c0 := testenv.CPUTime()
		b.StartTimer()
		if err := p.PriceFrame(ctx, f); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += testenv.CPUTime() - c0
		b.StartTimer()
	}
	points := float64(n) * float64(b.N)
	b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/points, "ns/point")
	// On a shared machine wall time includes waiting for a core; points
	// per second of CPU the process used (GC included) is the one-core rate.
	if cpu > 0 {
		b.ReportMetric(points/cpu.Seconds(), "points/cpu-s")
	}
}

// BenchmarkHashmapPrice prices 1,000,000 points on one core (target:
// 5,000,000 points/s).
func BenchmarkHashmapPrice(b *testing.B) { benchPrice(b, 1_000_000, false) }

// BenchmarkHashmapPriceDecimal prices 100,000 points with decimal
// arithmetic only, for comparison with the fixed-point fast path.
func BenchmarkHashmapPriceDecimal(b *testing.B) { benchPrice(b, 100_000, true) }
