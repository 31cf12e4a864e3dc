package ratingbridge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/ratingbridge/writer"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestProcessorOnSQLite runs the whole bridge on the SQLite store: rules
// through its hashmap API, machines and history through its machine API,
// two processors racing, then the writers.
func TestProcessorOnSQLite(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)

	svc := &hashmap.Service{Name: ServiceInstance}
	must(t, s.CreateHashmapService(ctx, svc))
	size := &hashmap.Field{ServiceID: svc.ID, Name: KeySize}
	must(t, s.CreateHashmapField(ctx, size))
	must(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: size.ID, Value: "t3.large", Type: hashmap.CostFlat, Cost: d("0.0832")}))
	must(t, s.CreateHashmapMapping(ctx, &hashmap.Mapping{FieldID: size.ID, Value: "small", Type: hashmap.CostFlat, Cost: d("0.01")}))
	must(t, s.CreateHashmapThreshold(ctx, &hashmap.Threshold{ServiceID: svc.ID, Level: d("1"), Type: hashmap.CostRate, Cost: d("0.9")}))

	must(t, s.PutMachine(ctx, &stack.Machine{ID: "m1", StackID: "st1", OwnerID: "u1", Provider: "aws", Label: "aws_instance.web",
		State: running, CreatedAt: at("10m"), Metadata: []byte(`{"instance_type":"t3.large","region":"us-east-1"}`)}))
	must(t, s.SetMachineState(ctx, "m1", stopped, "", at("2h30m")))
	must(t, s.PutMachine(ctx, &stack.Machine{ID: "m2", StackID: "st2", OwnerID: "u2", Provider: "sandbox", Label: "sandbox_machine.db",
		State: building, CreatedAt: at("0s"), Metadata: []byte(`{"size":"small"}`)}))
	must(t, s.SetMachineState(ctx, "m2", running, "", at("1h")))
	must(t, s.SetMachineState(ctx, "m2", stopped, "agent silent since 01:20", at("1h20m")))

	pipe, err := NewPipeline(s, DefaultModules(s)...)
	if err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewFakeClock(at("5h"))
	newProc := func() *Processor {
		return &Processor{Collector: &Collector{Machines: s}, Pipeline: pipe, Store: s, Scopes: OwnerScopes(s, s), Clock: clk.Now, Logger: quiet}
	}
	pass, err := newProc().Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pass != (Pass{Scopes: 2, Periods: 8, Points: 4}) {
		t.Errorf("pass %+v", pass)
	}
	pts, err := s.RatedPoints(ctx, store.SummaryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pts {
		got = append(got, fmt.Sprintf("%s %s %s %s@%s %s/%s", p.Scope, p.Begin.Sub(t0), p.Groupby[KeyMachineID], p.Qty, p.Price, p.Metadata[KeySize], p.Metadata[KeyRegion]))
	}
	want := []string{
		"u1 0s m1 0.833333333@0.0693333333056 t3.large/us-east-1",
		"u1 1h0m0s m1 1@0.07488 t3.large/us-east-1",
		"u2 1h0m0s m2 0.333333333@0.00333333333 small/",
		"u1 2h0m0s m1 0.5@0.0416 t3.large/us-east-1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rated points\n%v\nwant\n%v", got, want)
	}
	for _, scope := range []string{"u1", "u2"} {
		st, err := s.GetScopeState(ctx, scope)
		if err != nil || !st.LastProcessed.Equal(at("4h")) {
			t.Errorf("%s state %+v %v, want 04:00", scope, st, err)
		}
	}

	// Two processors race over the next ten hours: every period once, no
	// error.
	clk.Set(at("15h"))
	must(t, s.SetMachineState(ctx, "m2", running, "", at("6h")))
	var g errgroup.Group
	for range 2 {
		p := newProc()
		g.Go(func() error { return p.ProcessAll(ctx) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("racing processors: %v", err)
	}
	pts, err = s.RatedPoints(ctx, store.SummaryQuery{Scope: "u2", Begin: at("4h")})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Time]int{}
	for _, p := range pts {
		seen[p.Begin]++
	}
	if len(pts) != 8 || len(seen) != 8 { // 06:00 to 14:00
		t.Fatalf("u2 after the race: %d points over %d periods, want 8 and 8", len(pts), len(seen))
	}

	// Writers on the same store; a rewrite gives the same bytes.
	dir := t.TempDir()
	o := writer.New(s, s, dir)
	must(t, o.WriteAll(ctx))
	first, err := os.ReadFile(filepath.Join(dir, "u1", "2025-01.csv"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.PutWriterState(ctx, &store.WriterState{Scope: "u1", Writer: "csv"}))
	must(t, o.WriteScope(ctx, "u1"))
	again, _ := os.ReadFile(filepath.Join(dir, "u1", "2025-01.csv"))
	if string(first) != string(again) {
		t.Errorf("rewrite differs:\n%s\n%s", first, again)
	}
	ws, err := s.GetWriterState(ctx, "u1", "json")
	if err != nil || !ws.Total.Equal(d("0.1858133333056")) || !ws.LastWritten.Equal(at("14h")) {
		t.Errorf("u1 json writer state %+v %v", ws, err)
	}
	reports, err := writer.ListReports(dir)
	if err != nil || len(reports) != 4 {
		t.Errorf("reports %+v %v", reports, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
