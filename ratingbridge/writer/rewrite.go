package writer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// Change is a rated period whose total moved by Delta (a re-rating).
type Change struct {
	Begin time.Time
	Delta decimal.Decimal
}

// Rewrite brings a scope's reports in line with re-rated periods: every
// writer rewrites, from the stored points, each month holding a changed
// period it had written, and its running total moves by the deltas of
// those periods. Periods a writer had not reached yet are written with
// their new prices in its next pass.
func (o *Orchestrator) Rewrite(ctx context.Context, scope string, changes []Change) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(changes) == 0 {
		return nil
	}
	if err := ValidScope(scope); err != nil {
		return fmt.Errorf("rewrite reports of %q: %w", scope, err)
	}
	for _, w := range o.writers() {
		ws, err := o.States.GetWriterState(ctx, scope, w.Name())
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("rewrite %s reports of %s: %w", w.Name(), scope, err)
		}
		var months []time.Time
		delta := decimal.Zero
		for _, c := range changes {
			if !c.Begin.Before(ws.LastWritten) {
				continue
			}
			delta = delta.Add(c.Delta)
			if m := monthStart(c.Begin); !slices.ContainsFunc(months, m.Equal) {
				months = append(months, m)
			}
		}
		for _, m := range months {
			month, err := o.load(ctx, scope, m, ws.LastWritten)
			if err != nil {
				return err
			}
			if err := o.writeFile(scope, month, w); err != nil {
				return err
			}
		}
		if delta.IsZero() {
			continue
		}
		ws.Total = ws.Total.Add(delta)
		if err := o.States.PutWriterState(ctx, ws); err != nil {
			return fmt.Errorf("rewrite %s reports of %s: save state: %w", w.Name(), scope, err)
		}
	}
	return nil
}
