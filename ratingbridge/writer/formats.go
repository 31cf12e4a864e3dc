package writer

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/internal/jsonenc"
	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/store"
)

// CSVColumns returns the CSV report's columns, after AWS detailed billing.
func CSVColumns() []string {
	return []string{"period_start", "period_end", "machine_id", "stack_id", "provider", "size", "region", "qty", "unit", "rate", "cost"}
}

// RatePlaces is the number of decimal places the CSV rate is shown with.
const RatePlaces = 12

// CSV writes one row per rated point and a totals row. cost is the stored
// price itself, computed once by the rating pipeline; rate is cost ÷ qty,
// rounded half away from zero to RatePlaces places for display (empty when
// qty is 0). qty × rate is the cost exactly whenever the rate needs no more
// places, which is the case for prices made of per-hour costs; otherwise it
// differs from the cost by less than qty × 10^-12 and the cost column is
// the one to add up: its sum is the totals row, digit for digit. The
// totals row reads "total" in period_start, the summed qty when every row
// has the same unit, and the summed cost.
type CSV struct{}

// Name is "csv".
func (CSV) Name() string { return "csv" }

// Header writes the column names.
func (CSV) Header(w io.Writer, _ *Month) error {
	return writeCSV(w, CSVColumns())
}

// Period appends a row per point. A row is written as encoding/csv
// writes it: the desc columns and the unit are quoted by it (once per
// desc and unit); times and decimals never need quotes.
func (CSV) Period(w io.Writer, per *Period, _ bool) error {
	cw := &chunkWriter{w: w, b: make([]byte, 0, chunkSize+4096)}
	var times []byte
	for i := range per.Points {
		p := &per.Points[i]
		if i == 0 || !p.Begin.Equal(per.Points[i-1].Begin) || !p.End.Equal(per.Points[i-1].End) {
			times = p.Begin.UTC().AppendFormat(times[:0], time.RFC3339)
			times = append(times, ',')
			times = p.End.UTC().AppendFormat(times, time.RFC3339)
			times = append(times, ',')
		}
		b := append(cw.b, times...)
		b = append(b, per.view(i).csv...)
		b = append(b, ',')
		b = append(b, per.format(p.Qty)...)
		b = append(b, ',')
		b = append(b, per.unitCSV(p.Unit)...)
		b = append(b, ',')
		b = append(b, per.rate(p.Qty, p.Price)...)
		b = append(b, ',')
		b = append(b, per.format(p.Price)...)
		cw.b = append(b, '\n')
		if err := cw.flush(chunkSize); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	if err := cw.flush(0); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// Trailer writes the totals row.
func (CSV) Trailer(w io.Writer, m *Month) error {
	total := []string{"total", "", "", "", "", "", "", "", "", "", m.Total.String()}
	if !m.MixedUnits {
		total[7], total[8] = m.Qty.String(), m.Unit
	}
	return writeCSV(w, total)
}

// ReadTrailer finds the totals row at the end of tail. The month's last
// period written is the last row's; an empty month has none.
func (CSV) ReadTrailer(tail []byte, m *Month) (int, bool) {
	body := bytes.TrimSuffix(tail, []byte("\n"))
	if len(body) == len(tail) {
		return 0, false // a file cut short
	}
	at := bytes.LastIndexByte(body, '\n') + 1
	if at == 0 {
		return 0, false
	}
	row, err := csv.NewReader(bytes.NewReader(tail[at:])).Read()
	if err != nil || len(row) != len(CSVColumns()) || row[0] != "total" {
		return 0, false
	}
	var ok bool
	if m.Total, ok = parseDecimal(row[10]); !ok {
		return 0, false
	}
	m.MixedUnits = row[7] == ""
	if !m.MixedUnits {
		if m.Qty, ok = parseDecimal(row[7]); !ok {
			return 0, false
		}
		m.Unit = row[8]
	}
	// The row before: the last point's, or the header of an empty month.
	prev := bytes.LastIndexByte(body[:at-1], '\n') + 1
	last, err := csv.NewReader(bytes.NewReader(tail[prev:at])).Read()
	if err != nil || len(last) != len(CSVColumns()) {
		return 0, false
	}
	if last[0] != CSVColumns()[0] {
		end, err := time.Parse(time.RFC3339, last[1])
		if err != nil {
			return 0, false
		}
		m.Written, m.Periods = end, 1
	}
	return at, true
}

func writeCSV(w io.Writer, row []string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(row); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func parseDecimal(s string) (decimal.Decimal, bool) {
	d, err := decimal.NewFromString(s)
	return d, err == nil
}

// field is a point's desc value: groupby first, then metadata.
func field(p *store.RatedPoint, k string) string {
	if v, ok := p.Groupby[k]; ok {
		return v
	}
	return p.Metadata[k]
}

// JSON writes the month's periods in CloudKitty's v2 frame form, each with
// its total, then through and the month's total.
type JSON struct{}

// Name is "json".
func (JSON) Name() string { return "json" }

// JSONReport is the JSON report's shape.
type JSONReport struct {
	Scope   string          `json:"scope"`
	Month   string          `json:"month"`
	Begin   time.Time       `json:"begin"`
	End     time.Time       `json:"end"`
	Periods []JSONPeriod    `json:"periods"`
	Through time.Time       `json:"through"`
	Total   decimal.Decimal `json:"total"`
}

// JSONPeriod is one rated period of a JSON report.
type JSONPeriod struct {
	Begin time.Time                        `json:"begin"`
	End   time.Time                        `json:"end"`
	Usage map[string][]dataframe.DataPoint `json:"usage"`
	Total decimal.Decimal                  `json:"total"`
}

// jsonTrailer starts the part of a JSON report that each append rewrites:
// the end of the periods array, then through and the total.
const jsonTrailer = "\n  ],\n  \"through\": "

// Header opens the report object and its periods array.
func (JSON) Header(w io.Writer, m *Month) error {
	head := struct {
		Scope string    `json:"scope"`
		Month string    `json:"month"`
		Begin time.Time `json:"begin"`
		End   time.Time `json:"end"`
	}{m.Scope, m.Name, m.Begin.UTC(), m.End.UTC()}
	b, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	b = append(bytes.TrimSuffix(b, []byte("\n}")), ",\n  \"periods\": ["...)
	_, err = w.Write(b)
	return err
}

// Period appends one period to the array, as
// json.MarshalIndent(JSONPeriod{…}, "    ", "  ") writes it (a point as
// dataframe.DataPoint's v2 form), without reflection or a second pass: a
// report holds every point of a month.
func (JSON) Period(w io.Writer, per *Period, first bool) error {
	cw := &chunkWriter{w: w, b: make([]byte, 0, chunkSize+4096)}
	if first {
		cw.b = append(cw.b, "\n    "...)
	} else {
		cw.b = append(cw.b, ",\n    "...)
	}
	appendPeriod(cw, per)
	return cw.flush(0)
}

// chunkSize is how much of a period a writer renders before it writes.
const chunkSize = 64 << 10

// chunkWriter renders into b and writes b out once it holds more than a
// given size: a period of ten thousand points is never whole in memory.
type chunkWriter struct {
	w   io.Writer
	b   []byte
	err error
}

// flush writes b when it holds more than over bytes.
func (cw *chunkWriter) flush(over int) error {
	if len(cw.b) > over && cw.err == nil {
		_, cw.err = cw.w.Write(cw.b)
		cw.b = cw.b[:0]
	}
	return cw.err
}

// The line starts of a period's levels in a JSON report: a newline, the
// prefix of a period in the array, and each level's indentation.
const (
	lnPeriod = "\n    "
	lnKey    = lnPeriod + "  "
	lnUsage  = lnKey + "  "
	lnPoint  = lnUsage + "  "
	lnField  = lnPoint + "  "
	lnValue  = lnField + "  "
)

// appendPeriod renders per as an indented JSONPeriod.
func appendPeriod(cw *chunkWriter, per *Period) {
	b := cw.b
	b = append(b, "{"+lnKey+`"begin": "`...)
	b = per.Begin.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `",`+lnKey+`"end": "`...)
	b = per.End.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `",`+lnKey+`"usage": `...)
	services := make([]string, 0, 1)
	for i := range per.Points {
		if s := per.Points[i].Service; !slices.Contains(services, s) {
			services = append(services, s)
		}
	}
	slices.Sort(services)
	if len(services) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, '{')
		for i, s := range services {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, lnUsage...)
			b = jsonenc.String(b, s)
			b = append(b, ": ["...)
			n := 0
			for j := range per.Points {
				p := &per.Points[j]
				if p.Service != s {
					continue
				}
				if n > 0 {
					b = append(b, ',')
				}
				n++
				b = append(b, lnPoint+"{"+lnField+`"vol": {`+lnValue+`"unit": `...)
				b = jsonenc.String(b, p.Unit)
				b = append(b, ","+lnValue+`"qty": "`...)
				b = append(b, per.format(p.Qty)...)
				b = append(b, `"`+lnField+"},"+lnField+`"rating": {`+lnValue+`"price": "`...)
				b = append(b, per.format(p.Price)...)
				v := per.view(j)
				b = append(b, `"`+lnField+"},"+lnField+`"groupby": `...)
				b = append(b, v.jsonGroupby...)
				b = append(b, ","+lnField+`"metadata": `...)
				b = append(b, v.jsonMetadata...)
				b = append(b, lnPoint+"}"...)
				cw.b = b
				if cw.flush(chunkSize) != nil {
					return
				}
				b = cw.b
			}
			b = append(b, lnUsage+"]"...)
		}
		b = append(b, lnKey+"}"...)
	}
	b = append(b, ","+lnKey+`"total": "`...)
	b = append(b, per.Total.String()...)
	cw.b = append(b, `"`+lnPeriod+"}"...)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Trailer closes the array and states through and the total.
func (JSON) Trailer(w io.Writer, m *Month) error {
	through, _ := json.Marshal(m.Through.UTC())
	total, _ := json.Marshal(m.Total)
	_, err := fmt.Fprintf(w, "%s%s,\n  \"total\": %s\n}\n", jsonTrailer, through, total)
	return err
}

// ReadTrailer finds the trailer at the end of tail.
func (JSON) ReadTrailer(tail []byte, m *Month) (int, bool) {
	at := bytes.LastIndex(tail, []byte(jsonTrailer))
	if at < 0 {
		return 0, false
	}
	var t struct {
		Through time.Time       `json:"through"`
		Total   decimal.Decimal `json:"total"`
	}
	if err := json.Unmarshal(append([]byte("{"), tail[at+len("\n  ],"):]...), &t); err != nil {
		return 0, false
	}
	m.Total, m.Written = t.Total, t.Through
	if !strings.HasSuffix(string(tail[:at]), "[") {
		m.Periods = 1
	}
	return at, true
}
