package writer

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/shopspring/decimal"

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

// Write renders the month.
func (CSV) Write(w io.Writer, m *Month) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVColumns()); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	qty, unit, oneUnit := decimal.Zero, "", true
	for _, per := range m.Periods {
		for _, p := range per.Points {
			rate := ""
			if !p.Qty.IsZero() {
				rate = p.Price.DivRound(p.Qty, RatePlaces).String()
			}
			row := []string{
				p.Begin.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339),
				field(p, "machine_id"), field(p, "stack_id"), field(p, "provider"),
				field(p, "size"), field(p, "region"),
				p.Qty.String(), p.Unit, rate, p.Price.String(),
			}
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("write csv: %w", err)
			}
			qty = qty.Add(p.Qty)
			if unit == "" {
				unit = p.Unit
			} else if unit != p.Unit {
				oneUnit = false
			}
		}
	}
	total := []string{"total", "", "", "", "", "", "", "", "", "", m.Total.String()}
	if oneUnit {
		total[7], total[8] = qty.String(), unit
	}
	if err := cw.Write(total); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// field is a point's desc value: groupby first, then metadata.
func field(p store.RatedPoint, k string) string {
	if v, ok := p.Groupby[k]; ok {
		return v
	}
	return p.Metadata[k]
}

// JSON writes the month's periods in CloudKitty's v2 frame form, each with
// its total, and the month's total.
type JSON struct{}

// Name is "json".
func (JSON) Name() string { return "json" }

// JSONReport is the JSON report's shape.
type JSONReport struct {
	Scope   string          `json:"scope"`
	Month   string          `json:"month"`
	Begin   time.Time       `json:"begin"`
	End     time.Time       `json:"end"`
	Through time.Time       `json:"through"`
	Periods []JSONPeriod    `json:"periods"`
	Total   decimal.Decimal `json:"total"`
}

// JSONPeriod is one rated period of a JSON report.
type JSONPeriod struct {
	Begin time.Time                        `json:"begin"`
	End   time.Time                        `json:"end"`
	Usage map[string][]dataframe.DataPoint `json:"usage"`
	Total decimal.Decimal                  `json:"total"`
}

// Write renders the month.
func (JSON) Write(w io.Writer, m *Month) error {
	r := JSONReport{Scope: m.Scope, Month: m.Name, Begin: m.Begin.UTC(), End: m.End.UTC(), Through: m.Through.UTC(),
		Periods: make([]JSONPeriod, 0, len(m.Periods)), Total: m.Total}
	for _, per := range m.Periods {
		jp := JSONPeriod{Begin: per.Begin, End: per.End, Usage: map[string][]dataframe.DataPoint{}, Total: per.Total}
		for _, p := range per.Points {
			jp.Usage[p.Service] = append(jp.Usage[p.Service], dataframe.DataPoint{
				Unit: p.Unit, Qty: p.Qty, Price: p.Price, Groupby: p.Groupby, Metadata: p.Metadata})
		}
		r.Periods = append(r.Periods, jp)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
