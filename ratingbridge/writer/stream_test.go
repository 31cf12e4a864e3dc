package writer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

// countingSource counts the rated points the writers read.
type countingSource struct {
	RatedSource
	points  atomic.Int64
	maxRead atomic.Int64
}

func (c *countingSource) RatedPoints(ctx context.Context, q store.SummaryQuery) ([]store.RatedPoint, error) {
	pts, err := c.RatedSource.RatedPoints(ctx, q)
	c.points.Add(int64(len(pts)))
	if n := int64(len(pts)); n > c.maxRead.Load() {
		c.maxRead.Store(n)
	}
	return pts, err
}

// hourOf commits hour h of scope u1 with n machines.
func hourOf(t *testing.T, s *fake.Store, h, n int) {
	t.Helper()
	var pts []pt
	for i := range n {
		pts = append(pts, pt{fmt.Sprintf("m%03d", (i*7)%n), []string{"small", "large"}[i%2], "1", "0.0" + fmt.Sprint(1+i%9)})
	}
	commit(t, s, "u1", h, pts...)
}

// TestAppendsEqualRewrite: reports written a period at a time, across a
// month boundary, are byte for byte the reports written in one pass, and
// each pass reads only the points it appends (a page at a time).
func TestAppendsEqualRewrite(t *testing.T) {
	ctx := context.Background()
	s := fake.New()
	src := &countingSource{RatedSource: s}
	dir := t.TempDir()
	o := New(src, s, dir)
	o.PageSize = 7
	const machines = 12
	for h := range 6 {
		if h == 3 {
			commit(t, s, "u1", h) // an hour without usage
		} else {
			hourOf(t, s, h, machines)
		}
		before := src.points.Load()
		if err := o.WriteScope(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		// The new hour's points, and the rest of a page at most.
		if read := src.points.Load() - before; read > machines+int64(o.PageSize) {
			t.Errorf("pass %d read %d points for %d new ones", h, read, machines)
		}
	}
	if src.maxRead.Load() > int64(o.PageSize) {
		t.Errorf("a read returned %d points, more than a page", src.maxRead.Load())
	}
	whole := t.TempDir()
	if err := New(s, fake.New(), whole).WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"2025-01.csv", "2025-01.json", "2025-02.csv", "2025-02.json"} {
		if got, want := read(t, filepath.Join(dir, "u1", f)), read(t, filepath.Join(whole, "u1", f)); got != want {
			t.Errorf("%s written a period at a time differs from one pass:\n%s\nwant\n%s", f, got, want)
		}
	}
	ws, _ := s.GetWriterState(ctx, "u1", "csv")
	if !ws.LastWritten.Equal(jan31.Add(6 * time.Hour)) {
		t.Errorf("state %+v", ws)
	}
}

// TestBrokenReportIsWrittenAgain: a report cut short (a pass that crashed
// while appending) or deleted is written again whole by the next pass.
func TestBrokenReportIsWrittenAgain(t *testing.T) {
	ctx := context.Background()
	s, o, dir := setup(t)
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	feb := filepath.Join(dir, "u1", "2025-02.csv")
	febJSON := filepath.Join(dir, "u1", "2025-02.json")
	full := read(t, feb)
	fullJSON := read(t, febJSON)
	// Cut the CSV inside its last row, delete the JSON; rate a new hour.
	if err := os.WriteFile(feb, []byte(full[:len(full)-20]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(febJSON); err != nil {
		t.Fatal(err)
	}
	commit(t, s, "u1", 4, pt{"m1", "small", "1", "0.01"})
	if err := o.WriteScope(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	got := read(t, feb)
	if !strings.HasPrefix(got, strings.TrimSuffix(full, "total,,,,,,,0.5,hour,,0.255\n")) || !strings.HasSuffix(got, "total,,,,,,,1.5,hour,,0.265\n") {
		t.Errorf("February CSV after a cut and a new hour:\n%s", got)
	}
	gotJSON := read(t, febJSON)
	if !strings.HasPrefix(gotJSON, fullJSON[:strings.Index(fullJSON, jsonTrailer)]) || !strings.Contains(gotJSON, `"total": "0.265"`) {
		t.Errorf("February JSON after a delete and a new hour:\n%s", gotJSON)
	}
}

// TestPeriodsMatchLibraries: a JSON report's period is what
// json.MarshalIndent makes of its JSONPeriod, and a CSV report's rows are
// what encoding/csv writes, whether the period was prepared (desc views
// remembered by DescID, across periods) or not.
func TestPeriodsMatchLibraries(t *testing.T) {
	begin := jan31
	per := &Period{Begin: begin, End: begin.Add(time.Hour), Total: d("1.5")}
	for i, svc := range []string{"volume", "instance", "instance", "ip<&>"} {
		per.Points = append(per.Points, store.RatedPoint{Begin: begin, End: per.End, Service: svc, Unit: []string{"hour", "GiB, \"raw\"", "é", ""}[i],
			Qty: d(fmt.Sprint(i) + ".25"), Price: d("0.1"),
			Groupby:  map[string]string{"machine_id": fmt.Sprint("m", i), "b\"q": "x\\y", "stack_id": " lead,ing"},
			Metadata: map[string]string{"size": "<large>", "z": "\n", "region": "a\"b\r\nc"}, DescID: uint64(i%2 + 1)})
	}
	per.Points = append(per.Points, store.RatedPoint{Begin: begin, End: per.End, Service: "instance", Unit: "hour", Qty: d("0"), Price: d("0")})
	empty := &Period{Begin: begin, End: per.End, Total: d("0")}
	// More than a chunk: written in pieces.
	big := &Period{Begin: begin, End: per.End, Total: d("4")}
	for i := range 2000 {
		big.Points = append(big.Points, store.RatedPoint{Begin: begin, End: per.End, Service: "instance", Unit: "hour", Qty: d("1"), Price: d("0.01"),
			Groupby: map[string]string{"machine_id": fmt.Sprintf("m-%05d", i), "stack_id": "st-1"}, Metadata: map[string]string{"size": "t3.micro", "region": "us-east-1a"},
			DescID: uint64(100 + i)})
	}
	// Points that share a DescID share their desc, as a store names them.
	for i := 1; i < len(per.Points)-1; i += 2 {
		per.Points[i].Groupby, per.Points[i].Metadata = per.Points[1].Groupby, per.Points[1].Metadata
	}
	for i := 2; i < len(per.Points)-1; i += 2 {
		per.Points[i].Groupby, per.Points[i].Metadata = per.Points[0].Groupby, per.Points[0].Metadata
	}
	var views descViews
	for _, c := range []struct {
		per      *Period
		first    bool
		prepared bool
	}{{per, true, false}, {per, false, false}, {empty, false, false}, {big, false, false},
		{per, true, true}, {empty, false, true}, {big, false, true}, {big, false, true}} {
		per, first := c.per, c.first
		if c.prepared {
			// As a pass does; the second big period finds its views
			// remembered.
			if len(per.Points) > 0 {
				per = newPeriod(slices.Clone(per.Points), &views)
				per.Total = c.per.Total
			}
			per.prepare()
		}
		var got bytes.Buffer
		if err := (JSON{}).Period(&got, per, first); err != nil {
			t.Fatal(err)
		}
		jp := JSONPeriod{Begin: per.Begin, End: per.End, Usage: map[string][]dataframe.DataPoint{}, Total: per.Total}
		for _, p := range per.Points {
			jp.Usage[p.Service] = append(jp.Usage[p.Service], dataframe.DataPoint{Unit: p.Unit, Qty: p.Qty, Price: p.Price, Groupby: p.Groupby, Metadata: p.Metadata})
		}
		b, err := json.MarshalIndent(jp, "    ", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want := ",\n    " + string(b)
		if first {
			want = "\n    " + string(b)
		}
		if got.String() != want {
			t.Errorf("JSON, first %v, prepared %v:\n%s\nwant\n%s", first, c.prepared, got.String(), want)
		}

		got.Reset()
		if err := (CSV{}).Period(&got, per, first); err != nil {
			t.Fatal(err)
		}
		var wantCSV bytes.Buffer
		cw := csv.NewWriter(&wantCSV)
		for _, p := range per.Points {
			rate := ""
			if !p.Qty.IsZero() {
				rate = p.Price.DivRound(p.Qty, RatePlaces).String()
			}
			if err := cw.Write([]string{p.Begin.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339),
				field(&p, "machine_id"), field(&p, "stack_id"), field(&p, "provider"), field(&p, "size"), field(&p, "region"),
				p.Qty.String(), p.Unit, rate, p.Price.String()}); err != nil {
				t.Fatal(err)
			}
		}
		cw.Flush()
		if got.String() != wantCSV.String() {
			t.Errorf("CSV, prepared %v:\n%s\nwant\n%s", c.prepared, got.String(), wantCSV.String())
		}
	}
	if len(views) != 2+2000 {
		t.Errorf("%d desc views remembered, want one per DescID (2002)", len(views))
	}
}

// TestStreamedReportsEqualPaged: a source that streams its points (SQLite)
// gives the same reports, byte for byte, as one read by pages.
func TestStreamedReportsEqualPaged(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var _ PointStreamer = st
	commitFixture(t, st)
	streamed, paged := t.TempDir(), t.TempDir()
	if err := New(st, st, streamed).WriteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(streamed, "u1", "2025-01.csv")); got != wantJan {
		t.Errorf("streamed January:\n%s\nwant\n%s", got, wantJan)
	}
	if got := read(t, filepath.Join(streamed, "u1", "2025-02.csv")); got != wantFeb {
		t.Errorf("streamed February:\n%s\nwant\n%s", got, wantFeb)
	}
	states := fake.New()
	byPages := &Orchestrator{Rated: st, States: states, Dir: paged, PageSize: 1}
	if err := byPages.WriteAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"2025-01.csv", "2025-01.json", "2025-02.csv", "2025-02.json"} {
		if a, b := read(t, filepath.Join(streamed, "u1", f)), read(t, filepath.Join(paged, "u1", f)); a != b {
			t.Errorf("%s streamed:\n%s\nby pages:\n%s", f, a, b)
		}
	}
}

// TestPeriodBufferIsSparedByTheLastFeed: a period's points buffer goes
// back for reuse once every feed has released the period, not before.
func TestPeriodBufferIsSparedByTheLastFeed(t *testing.T) {
	spare := make(chan []store.RatedPoint, 1)
	per := &Period{Points: make([]store.RatedPoint, 3), spare: spare}
	per.readers.Store(2)
	per.release()
	if len(spare) != 0 {
		t.Fatal("the buffer was spared while a feed still renders the period")
	}
	per.release()
	select {
	case b := <-spare:
		if len(b) != 0 || cap(b) != 3 {
			t.Errorf("spared buffer len %d cap %d, want 0 and 3", len(b), cap(b))
		}
	default:
		t.Fatal("the last feed's release spared nothing")
	}
}
