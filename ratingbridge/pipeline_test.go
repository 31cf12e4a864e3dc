package ratingbridge

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// sizeRules prices instances by size: small 0.01/h, large 0.08/h, and a
// fee of 0.001/h per aws machine in its own group.
func sizeRules() hashmap.RuleSet {
	return hashmap.RuleSet{
		Services: []*hashmap.Service{{ID: "s", Name: ServiceInstance}},
		Fields:   []*hashmap.Field{{ID: "size", ServiceID: "s", Name: "size"}, {ID: "prov", ServiceID: "s", Name: "provider"}},
		Groups:   []*hashmap.Group{{ID: "g", Name: "fees"}},
		Mappings: []*hashmap.Mapping{
			{ID: "m1", FieldID: "size", Value: "small", Type: "flat", Cost: d("0.01")},
			{ID: "m2", FieldID: "size", Value: "large", Type: "flat", Cost: d("0.08")},
			{ID: "m3", FieldID: "prov", Value: "aws", GroupID: "g", Type: "flat", Cost: d("0.001")},
		},
	}
}

func newPipeline(t testing.TB, s *fake.Store, extra ...Module) *Pipeline {
	t.Helper()
	p, err := NewPipeline(s, append(DefaultModules(s), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestModules(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	p := newPipeline(t, s)
	got, err := p.ListModules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ModuleInfo{
		{Name: "hashmap", Description: (&Hashmap{}).Description(), Enabled: true, Priority: 1, HotConfig: true},
		{Name: "noop", Description: Noop{}.Description(), Enabled: false, Priority: 1, HotConfig: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("modules %+v, want %+v", got, want)
	}
	on, prio := true, 5
	m, err := p.UpdateModule(ctx, "noop", ModuleUpdate{Enabled: &on, Priority: &prio})
	if err != nil || !m.Enabled || m.Priority != 5 {
		t.Fatalf("UpdateModule: %+v %v", m, err)
	}
	stored, _ := s.GetRatingModule(ctx, "noop")
	if stored == nil || !stored.Enabled || stored.Priority != 5 {
		t.Fatalf("stored %+v", stored)
	}
	off := false
	m, err = p.UpdateModule(ctx, "hashmap", ModuleUpdate{Enabled: &off})
	if err != nil || m.Enabled || m.Priority != 1 {
		t.Fatalf("UpdateModule hashmap: %+v %v", m, err)
	}
	_, err = p.UpdateModule(ctx, "pyscripts", ModuleUpdate{Enabled: &on})
	if !errors.Is(err, ErrUnknownModule) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown module: %v", err)
	}
	if _, err := NewPipeline(s, Noop{}, Noop{}); err == nil {
		t.Error("duplicate module accepted")
	}
}

// orderModule appends its name to the unit of every point, so the order
// modules ran in is visible.
type orderModule struct {
	name string
	def  Setting
}

func (m orderModule) Name() string        { return m.name }
func (m orderModule) Description() string { return "test" }
func (m orderModule) Default() Setting    { return m.def }
func (m orderModule) Load(context.Context) (FrameProcessor, error) {
	return m, nil
}
func (m orderModule) Process(_ context.Context, f *dataframe.DataFrame) error {
	for s := range f.Usage {
		for i := range f.Usage[s] {
			f.Usage[s][i].Unit += "/" + m.name
		}
	}
	return nil
}

func TestPipelineOrder(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	p := newPipeline(t, s,
		orderModule{"low", Setting{true, 1}},
		orderModule{"high", Setting{true, 10}},
		orderModule{"off", Setting{false, 100}},
		orderModule{"mid", Setting{true, 5}},
	)
	r, err := p.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Modules(), []string{"high", "mid", "hashmap", "low"}; !slices.Equal(got, want) {
		t.Fatalf("modules %v, want %v (priority, then name)", got, want)
	}
	f := dataframe.New(t0, t0)
	f.Add("x", dataframe.DataPoint{Unit: "u", Qty: d("1")})
	if err := r.Rate(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got := f.Usage["x"][0].Unit; got != "u/high/mid/low" {
		t.Fatalf("ran as %q", got)
	}
}

func TestQuote(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	p := newPipeline(t, s)
	pts, total, err := p.Quote(ctx, []QuotePoint{
		{Service: "instance", Qty: d("10"), Unit: "hour", Desc: map[string]string{"size": "large", "provider": "aws"}},
		{Service: "volume", Qty: d("100"), Unit: "GiB"},
		{Service: "instance", Qty: d("0.5"), Desc: map[string]string{"size": "small"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0.81", "0", "0.005"}
	for i, w := range want {
		if !pts[i].Price.Equal(d(w)) {
			t.Errorf("point %d: price %s, want %s", i, pts[i].Price, w)
		}
	}
	if pts[1].Service != "volume" || pts[2].Unit != dataframe.DefaultUnit {
		t.Errorf("points out of order or unit not defaulted: %+v", pts)
	}
	if !total.Equal(d("0.815")) {
		t.Errorf("total %s", total)
	}
	_, _, err = p.Quote(ctx, []QuotePoint{{Service: "instance", Qty: d("1")}, {Qty: d("1")}})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "points[1].service" || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("missing service: %v", err)
	}
	// Disabling hashmap: quotes are free.
	off := false
	if _, err := p.UpdateModule(ctx, "hashmap", ModuleUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	_, total, _ = p.Quote(ctx, []QuotePoint{{Service: "instance", Qty: d("10"), Desc: map[string]string{"size": "large"}}})
	if !total.IsZero() {
		t.Errorf("disabled hashmap still prices: %s", total)
	}
}

// TestQuoteTotalIsTheSumOfPrices: the total, however it is added up, is
// the prices summed point by point, to the digit and the exponent.
func TestQuoteTotalIsTheSumOfPrices(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	p := newPipeline(t, s)
	qtys := []string{"1", "0.5", "10", "0.1000", "3", "1e-5", "123456789012345678901234567890.5", "0", "2.25", "1"}
	sizes := []string{"small", "large", "medium"}
	for _, n := range []int{1, 2, 7, 100, 1000} {
		var q []QuotePoint
		for i := range n {
			desc := map[string]string{"size": sizes[i%len(sizes)]}
			if i%4 == 0 {
				desc["provider"] = "aws"
			}
			q = append(q, QuotePoint{Service: "instance", Qty: d(qtys[i%len(qtys)]), Desc: desc})
		}
		pts, total, err := p.Quote(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := decimal.Zero
		for _, pt := range pts {
			want = want.Add(pt.Price)
		}
		if total.String() != want.String() || total.Exponent() != want.Exponent() || !total.Equal(want) {
			t.Errorf("%d points: total %s (exp %d), point by point %s (exp %d)", n, total, total.Exponent(), want, want.Exponent())
		}
	}
}

// TestPriceSum: priceSum's total is Decimal.Add's one price at a time,
// to the digit and the exponent, whatever the prices.
func TestPriceSum(t *testing.T) {
	many := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	var exps []string
	for e := range 12 {
		exps = append(exps, decimal.New(int64(e+1), -int32(e)).String())
	}
	for _, tc := range []struct {
		name   string
		prices []string
	}{
		{"none", nil},
		{"zero", []string{"0"}},
		{"zeros with exponents", []string{"0.000", "0.0", "0"}},
		{"one exponent", []string{"0.01", "0.02", "0.03"}},
		{"mixed exponents", []string{"0.5", "1", "0.125", "20", "0.0001"}},
		{"more exponents than sums", exps},
		{"negative", []string{"0.5", "-0.75", "-3", "1.25"}},
		{"overflow", many(30, "999999999999999999")},
		{"negative overflow", many(30, "-999999999999999999")},
		{"long coefficients", []string{"123456789012345678901234567890.5", "0.1", "1e-30", "99999999999999999999"}},
		{"positive exponent", []string{"1e5", "2e3", "0.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s priceSum
			want := decimal.Zero
			for _, p := range tc.prices {
				s.add(d(p))
				want = want.Add(d(p))
			}
			got := s.total()
			if got.String() != want.String() || got.Exponent() != want.Exponent() || !got.Equal(want) {
				t.Errorf("total %s (exp %d), one by one %s (exp %d)", got, got.Exponent(), want, want.Exponent())
			}
		})
	}
}

func TestEstimateHourly(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	p := newPipeline(t, s)
	hourly, err := p.EstimateHourly(ctx, []EstimateMachine{
		{Provider: "aws", Size: "large", Region: "us-east-1", Label: "aws_instance.web[0]"},
		{Provider: "aws", Size: "large", Region: "us-east-1", Label: "aws_instance.web[1]"},
		{Provider: "sandbox", Size: "small"},
		{Provider: "sandbox"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !hourly.Equal(d("0.172")) {
		t.Fatalf("hourly %s, want 0.172", hourly)
	}
	if m := Monthly(hourly); !m.Equal(d("125.56")) {
		t.Fatalf("monthly %s, want 125.56", m)
	}
	// An estimate is what the collector's point for one hour would cost.
	s.AddMachine(&stack.Machine{ID: "m", OwnerID: "u", StackID: "st", Provider: "aws", Metadata: []byte(`{"size":"large","region":"us-east-1"}`)})
	s.Record(stack.StateRecord{MachineID: "m", State: running, At: at("0s")})
	f, err := (&Collector{Machines: s}).Collect(ctx, "u", at("0s"), at("1h"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.Load(ctx)
	if err := r.Rate(ctx, f); err != nil {
		t.Fatal(err)
	}
	one, _ := p.EstimateHourly(ctx, []EstimateMachine{{Provider: "aws", Size: "large", Region: "us-east-1"}})
	if got := f.Usage[ServiceInstance][0].Price; !got.Equal(one) {
		t.Fatalf("collected hour priced %s, estimate %s", got, one)
	}
}

func TestNoopChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	s.SetRules(sizeRules())
	p := newPipeline(t, s)
	q := []QuotePoint{{Service: "instance", Qty: d("3"), Desc: map[string]string{"size": "small"}}, {Service: "other", Qty: d("1")}}
	_, before, _ := p.Quote(ctx, q)
	on, prio := true, 9
	if _, err := p.UpdateModule(ctx, "noop", ModuleUpdate{Enabled: &on, Priority: &prio}); err != nil {
		t.Fatal(err)
	}
	pts, after, err := p.Quote(ctx, q)
	if err != nil || !after.Equal(before) || !pts[1].Price.IsZero() {
		t.Fatalf("with noop: %v %s, without %s", err, after, before)
	}
}
