package writer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/store"
)

var jan31 = time.Date(2025, 1, 31, 22, 0, 0, 0, time.UTC)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

type pt struct {
	machine, size, qty, price string
}

// commit stores one rated hour of scope starting h hours after jan31.
// committer is a store rated periods are committed to.
type committer interface {
	CommitRatedPeriod(context.Context, *store.RatedPeriod) error
}

func commit(t *testing.T, s committer, scope string, h int, pts ...pt) {
	t.Helper()
	begin := jan31.Add(time.Duration(h) * time.Hour)
	rp := &store.RatedPeriod{Scope: scope, Begin: begin, End: begin.Add(time.Hour)}
	for _, p := range pts {
		rp.Points = append(rp.Points, store.RatedPoint{
			Scope: scope, Begin: rp.Begin, End: rp.End, Service: "instance", Unit: "hour",
			Qty: d(p.qty), Price: d(p.price),
			Groupby:  map[string]string{"machine_id": p.machine, "stack_id": "st1", "provider": "aws", "owner": scope},
			Metadata: map[string]string{"size": p.size, "region": "us-east-1", "label": "aws_instance." + p.machine},
		})
	}
	if err := s.CommitRatedPeriod(context.Background(), rp); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func setup(t *testing.T) (*fake.Store, *Orchestrator, string) {
	s := fake.New()
	dir := t.TempDir()
	commitFixture(t, s)
	return s, New(s, s, dir), dir
}

// commitFixture commits the hours of u1 that wantJan and wantFeb report.
func commitFixture(t *testing.T, s committer) {
	// Points committed out of machine order: reports sort them.
	commit(t, s, "u1", 0, pt{"m2", "large", "1", "0.08"}, pt{"m1", "small", "0.333333333", "0.0784"})
	commit(t, s, "u1", 1, pt{"m1", "small", "1", "0.01"})
	commit(t, s, "u1", 2) // an hour without usage
	commit(t, s, "u1", 3, pt{"m1", "small", "0.5", "0.005"}, pt{"m2", "large", "0", "0.25"})
}

const wantJan = `period_start,period_end,machine_id,stack_id,provider,size,region,qty,unit,rate,cost
2025-01-31T22:00:00Z,2025-01-31T23:00:00Z,m1,st1,aws,small,us-east-1,0.333333333,hour,0.235200000235,0.0784
2025-01-31T22:00:00Z,2025-01-31T23:00:00Z,m2,st1,aws,large,us-east-1,1,hour,0.08,0.08
2025-01-31T23:00:00Z,2025-02-01T00:00:00Z,m1,st1,aws,small,us-east-1,1,hour,0.01,0.01
total,,,,,,,2.333333333,hour,,0.1684
`

const wantFeb = `period_start,period_end,machine_id,stack_id,provider,size,region,qty,unit,rate,cost
2025-02-01T01:00:00Z,2025-02-01T02:00:00Z,m1,st1,aws,small,us-east-1,0.5,hour,0.01,0.005
2025-02-01T01:00:00Z,2025-02-01T02:00:00Z,m2,st1,aws,large,us-east-1,0,hour,,0.25
total,,,,,,,0.5,hour,,0.255
`

func TestWriteScope(t *testing.T) {
	ctx := context.Background()
	s, o, dir := setup(t)
	if err := o.WriteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "u1", "2025-01.csv")); got != wantJan {
		t.Errorf("January CSV:\n%s\nwant\n%s", got, wantJan)
	}
	if got := read(t, filepath.Join(dir, "u1", "2025-02.csv")); got != wantFeb {
		t.Errorf("February CSV:\n%s\nwant\n%s", got, wantFeb)
	}
	var jr JSONReport
	if err := json.Unmarshal([]byte(read(t, filepath.Join(dir, "u1", "2025-01.json"))), &jr); err != nil {
		t.Fatal(err)
	}
	if jr.Month != "2025-01" || len(jr.Periods) != 2 || !jr.Total.Equal(d("0.1684")) || !jr.Through.Equal(jan31.Add(2*time.Hour)) {
		t.Errorf("January JSON: %+v", jr)
	}
	if p := jr.Periods[0].Usage["instance"]; len(p) != 2 || p[0].Groupby["machine_id"] != "m1" || !p[0].Price.Equal(d("0.0784")) {
		t.Errorf("January JSON first period: %+v", p)
	}
	for _, w := range []string{"csv", "json"} {
		ws, err := s.GetWriterState(ctx, "u1", w)
		if err != nil {
			t.Fatal(err)
		}
		if !ws.LastWritten.Equal(jan31.Add(4*time.Hour)) || !ws.Total.Equal(d("0.4234")) {
			t.Errorf("%s state %+v, want last written 02:00 and total 0.4234", w, ws)
		}
	}
	// Every CSV's cost column adds up to its totals row.
	for _, name := range []string{"2025-01.csv", "2025-02.csv"} {
		rows, err := csv.NewReader(bytes.NewReader([]byte(read(t, filepath.Join(dir, "u1", name))))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		sum := decimal.Zero
		for _, r := range rows[1 : len(rows)-1] {
			sum = sum.Add(d(r[10]))
		}
		if total := rows[len(rows)-1]; !sum.Equal(d(total[10])) {
			t.Errorf("%s: costs add to %s, totals row says %s", name, sum, total[10])
		}
	}
}

func TestRewriteIsIdentical(t *testing.T) {
	ctx := context.Background()
	s, o, dir := setup(t)
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	files := []string{"2025-01.csv", "2025-01.json", "2025-02.csv", "2025-02.json"}
	before := map[string]string{}
	for _, f := range files {
		before[f] = read(t, filepath.Join(dir, "u1", f))
	}
	// Forget the writer states: everything is rewritten from the store.
	for _, w := range []string{"csv", "json"} {
		_ = s.PutWriterState(ctx, &store.WriterState{Scope: "u1", Writer: w})
	}
	for _, f := range files {
		os.Remove(filepath.Join(dir, "u1", f))
	}
	if err := New(s, s, dir).WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if got := read(t, filepath.Join(dir, "u1", f)); got != before[f] {
			t.Errorf("%s differs after a rewrite", f)
		}
	}
	ws, _ := s.GetWriterState(ctx, "u1", "csv")
	if !ws.Total.Equal(d("0.4234")) {
		t.Errorf("total after rewrite %s", ws.Total)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "u1"))
	if len(entries) != 4 {
		t.Errorf("%d files in the scope dir, want 4 (no temporary left)", len(entries))
	}
}

func TestIncrementalWrites(t *testing.T) {
	ctx := context.Background()
	s, o, dir := setup(t)
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	jan := filepath.Join(dir, "u1", "2025-01.csv")
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(jan, old, old); err != nil {
		t.Fatal(err)
	}
	// Nothing new: nothing written.
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	commit(t, s, "u1", 4, pt{"m1", "small", "1", "0.01"})
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(jan); !info.ModTime().Equal(old) {
		t.Error("January was rewritten though no January period was rated")
	}
	feb := read(t, filepath.Join(dir, "u1", "2025-02.csv"))
	if !bytes.Contains([]byte(feb), []byte("2025-02-01T02:00:00Z,2025-02-01T03:00:00Z,m1")) || !bytes.HasSuffix([]byte(feb), []byte(",0.265\n")) {
		t.Errorf("February after a new period:\n%s", feb)
	}
	ws, _ := s.GetWriterState(ctx, "u1", "json")
	if !ws.Total.Equal(d("0.4334")) || !ws.LastWritten.Equal(jan31.Add(5*time.Hour)) {
		t.Errorf("state %+v", ws)
	}
}

// failingStates fails the first PutWriterState: the files are written but
// the state is not saved, as in a crash between the two.
type failingStates struct {
	*fake.Store
	failed bool
}

func (f *failingStates) PutWriterState(ctx context.Context, w *store.WriterState) error {
	if !f.failed {
		f.failed = true
		return errors.New("crash")
	}
	return f.Store.PutWriterState(ctx, w)
}

func TestCrashBeforeStateIsSaved(t *testing.T) {
	ctx := context.Background()
	s, _, dir := setup(t)
	o := New(s, &failingStates{Store: s}, dir)
	o.Writers = []Writer{CSV{}}
	if err := o.WriteScope(ctx, "u1"); err == nil {
		t.Fatal("want the state error")
	}
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	ws, _ := s.GetWriterState(ctx, "u1", "csv")
	if !ws.Total.Equal(d("0.4234")) {
		t.Errorf("total %s after a retry, want 0.4234 (counted once)", ws.Total)
	}
	if got := read(t, filepath.Join(dir, "u1", "2025-01.csv")); got != wantJan {
		t.Errorf("January after the retry:\n%s", got)
	}
}

func TestScopeWithoutUsage(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	commit(t, s, "idle", 0)
	dir := t.TempDir()
	o := New(s, s, dir)
	if err := o.WriteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if reports, _ := ListReports(dir); len(reports) != 0 {
		t.Errorf("reports for a scope without usage: %+v", reports)
	}
	ws, err := s.GetWriterState(ctx, "idle", "csv")
	if err != nil || !ws.LastWritten.Equal(jan31.Add(time.Hour)) || !ws.Total.IsZero() {
		t.Errorf("state %+v %v", ws, err)
	}
	if err := o.WriteScope(ctx, "../etc"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("scope ../etc: %v", err)
	}
}

func TestReports(t *testing.T) {
	ctx := context.Background()
	s, o, dir := setup(t)
	commit(t, s, "u-2", 0, pt{"m9", "small", "1", "1"})
	if err := o.WriteAll(ctx); err != nil {
		t.Fatal(err)
	}
	reports, err := ListReports(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range reports {
		names = append(names, r.Name)
	}
	want := []string{"u-2-2025-01.csv", "u-2-2025-01.json", "u1-2025-01.csv", "u1-2025-01.json", "u1-2025-02.csv", "u1-2025-02.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("reports %v, want %v", names, want)
	}
	if reports[0].Scope != "u-2" || reports[0].Month != "2025-01" || reports[0].Format != "csv" || reports[0].Size == 0 {
		t.Errorf("report %+v", reports[0])
	}
	f, r, err := OpenReport(dir, "u1-2025-01.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != wantJan || r.ContentType() != "text/csv; charset=utf-8" || r.Scope != "u1" {
		t.Errorf("opened %+v:\n%s", r, b)
	}

	// Outside the directory: a secret next to it and a link to it.
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "x"), 0o755)
	os.WriteFile(filepath.Join(outside, "x", "2025-01.csv"), []byte("secret"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "x"), filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want error
	}{
		{"u1-2025-03.csv", store.ErrNotFound},
		{"nobody-2025-01.csv", store.ErrNotFound},
		{"evil-2025-01.csv", nil}, // refused by the root, whatever the error
		{"../x-2025-01.csv", store.ErrInvalid},
		{"u1/../../x-2025-01.csv", store.ErrInvalid},
		{"..-2025-01.csv", store.ErrInvalid},
		{".-2025-01.csv", store.ErrInvalid},
		{"u1-2025-13.csv", store.ErrInvalid},
		{"u1-2025-01.txt", store.ErrInvalid},
		{"u1-2025-01.csv/..", store.ErrInvalid},
		{"", store.ErrInvalid},
	} {
		f, _, err := OpenReport(dir, tc.name)
		if err == nil {
			f.Close()
			t.Errorf("OpenReport(%q) succeeded", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("OpenReport(%q): %v, want %v", tc.name, err, tc.want)
		}
	}
	if got, err := ListReports(filepath.Join(dir, "absent")); err != nil || len(got) != 0 {
		t.Errorf("absent dir: %v %v", got, err)
	}
}
