package ratingbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// What the uptime collector reports.
const (
	ServiceInstance = "instance"
	UnitHour        = "hour"
	// QtyPlaces is the number of decimal places of a qty in hours:
	// qty = running time / 1 h, rounded half up to 9 places. One second is
	// 0.000277778 h, so distinct whole seconds give distinct quantities and
	// round(qty × 3600) gives the seconds back; the rounding error is below
	// 2 µs per point.
	QtyPlaces = 9
	// DefaultPeriod is the length of a rating period.
	DefaultPeriod = time.Hour
)

// Groupby and metadata keys of an instance point.
const (
	KeyMachineID = "machine_id"
	KeyStackID   = "stack_id"
	KeyProvider  = "provider"
	KeyOwner     = "owner"
	KeySize      = "size"
	KeyRegion    = "region"
	KeyImage     = "image"
	KeyLabel     = "label"
)

// metadataKeys lists, for each metadata field of a point, the keys of a
// machine's metadata JSON it is read from, first non-empty wins: the
// generic name, then the names AWS, DigitalOcean and OpenStack use.
var metadataKeys = [...]struct {
	field string
	keys  []string
}{
	{KeySize, []string{"size", "instance_type", "size_slug", "flavor"}},
	{KeyRegion, []string{"region", "availability_zone", "zone"}},
	{KeyImage, []string{"image", "ami", "image_id"}},
}

// HistorySource is what the collector reads (store.Machines).
type HistorySource interface {
	StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error)
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
}

// Collector builds uptime frames from the machines' state history. Only
// time in the Running state counts. A machine whose agent went silent has a
// Stopped record at its last heartbeat, so the history alone is right.
type Collector struct {
	Machines HistorySource
}

// PeriodStart is the start of the period of length period containing t,
// periods being aligned to the Unix epoch.
func PeriodStart(t time.Time, period time.Duration) time.Time {
	ns, p := t.UnixNano(), int64(period)
	q := ns / p
	if ns%p < 0 {
		q--
	}
	return time.Unix(0, q*p).UTC()
}

// Collect returns the scope's usage in [begin, end).
func (c *Collector) Collect(ctx context.Context, scope string, begin, end time.Time) (*dataframe.DataFrame, error) {
	if !end.After(begin) {
		return nil, fmt.Errorf("collect %s: period end %s is not after its start %s", scope, end, begin)
	}
	frames, err := c.CollectPeriods(ctx, scope, begin, end.Sub(begin), 1)
	if err != nil {
		return nil, err
	}
	return frames[0], nil
}

// machineDesc is a machine's groupby and metadata, shared by its points of
// one collection.
type machineDesc struct {
	groupby, metadata map[string]string
}

// CollectPeriods returns the scope's usage in n consecutive periods from
// begin, one frame each, from one history query. Points are ordered by
// machine id; a machine's points share their groupby and metadata maps.
func (c *Collector) CollectPeriods(ctx context.Context, scope string, begin time.Time, period time.Duration, n int) ([]*dataframe.DataFrame, error) {
	if period <= 0 || n < 1 {
		return nil, fmt.Errorf("collect %s: need a positive period and count, got %s × %d", scope, period, n)
	}
	begin = begin.UTC()
	end := begin.Add(time.Duration(n) * period)
	recs, err := c.Machines.StateHistory(ctx, store.HistoryQuery{OwnerID: scope, From: begin, To: end})
	if err != nil {
		return nil, fmt.Errorf("collect %s: read state history: %w", scope, err)
	}
	machines, err := c.Machines.ListMachines(ctx, store.MachineFilter{OwnerID: scope})
	if err != nil {
		return nil, fmt.Errorf("collect %s: list machines: %w", scope, err)
	}
	byID := make(map[string]*stack.Machine, len(machines))
	for _, m := range machines {
		byID[m.ID] = m
	}
	frames := make([]*dataframe.DataFrame, n)
	for i := range frames {
		s := begin.Add(time.Duration(i) * period)
		frames[i] = dataframe.New(s, s.Add(period))
	}
	running := make([]time.Duration, n)
	qtys := map[time.Duration]decimal.Decimal{}
	for i := 0; i < len(recs); {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("collect %s: %w", scope, err)
			}
		}
		j := i + 1
		for j < len(recs) && recs[j].MachineID == recs[i].MachineID {
			j++
		}
		group := recs[i:j]
		i = j
		if !slices.IsSortedFunc(group, func(a, b stack.StateRecord) int { return a.At.Compare(b.At) }) {
			group = slices.Clone(group)
			slices.SortStableFunc(group, func(a, b stack.StateRecord) int { return a.At.Compare(b.At) })
		}
		lo, hi := uptime(group, begin, end, period, running)
		if lo > hi {
			continue
		}
		desc := describe(scope, group[0].MachineID, byID[group[0].MachineID])
		for k := lo; k <= hi; k++ {
			d := running[k]
			if d <= 0 {
				continue
			}
			running[k] = 0
			qty, ok := qtys[d]
			if !ok {
				qty = Hours(d)
				qtys[d] = qty
			}
			frames[k].Add(ServiceInstance, dataframe.DataPoint{Unit: UnitHour, Qty: qty, Groupby: desc.groupby, Metadata: desc.metadata})
		}
	}
	return frames, nil
}

// Hours is d in hours, rounded half up to QtyPlaces places.
func Hours(d time.Duration) decimal.Decimal {
	if d%time.Hour == 0 {
		return decimal.NewFromInt(int64(d / time.Hour))
	}
	return decimal.NewFromInt(int64(d)).DivRound(decimal.NewFromInt(int64(time.Hour)), QtyPlaces)
}

// uptime adds one machine's running time in [begin, end) to running, per
// period, and returns the range of periods touched (lo > hi when none).
func uptime(group []stack.StateRecord, begin, end time.Time, period time.Duration, running []time.Duration) (lo, hi int) {
	lo, hi = len(running), -1
	for k, r := range group {
		if r.State != machinestate.Running {
			continue
		}
		a := r.At
		if a.Before(begin) {
			a = begin
		}
		b := end
		if k+1 < len(group) && group[k+1].At.Before(end) {
			b = group[k+1].At
		}
		if !b.After(a) {
			continue
		}
		off, stop := a.Sub(begin), b.Sub(begin)
		idx := int(off / period)
		lo = min(lo, idx)
		for off < stop {
			pe := time.Duration(idx+1) * period
			seg := min(stop, pe) - off
			running[idx] += seg
			hi = max(hi, idx)
			off = pe
			idx++
		}
	}
	return lo, hi
}

// describe builds a machine's groupby and metadata. A machine missing from
// the list (deleted, its history kept) is described by its id and owner.
func describe(owner, id string, m *stack.Machine) machineDesc {
	d := machineDesc{
		groupby:  map[string]string{KeyMachineID: id, KeyOwner: owner},
		metadata: map[string]string{},
	}
	if m == nil {
		return d
	}
	d.groupby[KeyStackID] = m.StackID
	d.groupby[KeyProvider] = m.Provider
	if m.Label != "" {
		d.metadata[KeyLabel] = m.Label
	}
	meta := parseMetadata(m.Metadata)
	for _, mk := range metadataKeys {
		for _, k := range mk.keys {
			if v := meta[k]; v != "" {
				d.metadata[mk.field] = v
				break
			}
		}
	}
	return d
}

// parseMetadata reads the scalar top-level values of a machine's metadata
// JSON as strings; metadata that is not a JSON object gives none.
func parseMetadata(raw json.RawMessage) map[string]string {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			out[k] = v
		case json.Number:
			out[k] = v.String()
		case bool:
			out[k] = strconv.FormatBool(v)
		}
	}
	return out
}
