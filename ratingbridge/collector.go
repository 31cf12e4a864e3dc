package ratingbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
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

// machineMeta holds the keys of a machine's metadata JSON that points
// describe, each field first non-empty wins: the generic name, then the
// names AWS, DigitalOcean and OpenStack use. Decoding into a struct skips
// every other key without allocating.
type machineMeta struct {
	Size             json.RawMessage `json:"size"`
	InstanceType     json.RawMessage `json:"instance_type"`
	SizeSlug         json.RawMessage `json:"size_slug"`
	Flavor           json.RawMessage `json:"flavor"`
	Region           json.RawMessage `json:"region"`
	AvailabilityZone json.RawMessage `json:"availability_zone"`
	Zone             json.RawMessage `json:"zone"`
	Image            json.RawMessage `json:"image"`
	AMI              json.RawMessage `json:"ami"`
	ImageID          json.RawMessage `json:"image_id"`
}

// HistorySource is what the collector reads (store.Machines).
type HistorySource interface {
	StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error)
	ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error)
}

// Collector builds uptime frames from the machines' state history. Only
// time in the Running state counts. A machine whose agent went silent has a
// Stopped record at its last heartbeat, so the history alone is right.
//
// A Collector remembers each machine's description (groupby and metadata
// maps, rebuilt when the machine's record changes) so that consecutive
// collections do not parse the same metadata again; the maps are shared by
// every point of the machine and must be treated as read-only. It is safe
// for concurrent use.
type Collector struct {
	Machines HistorySource

	mu    sync.Mutex
	descs map[string]cachedDesc // by machine id
}

// cachedDesc is a machine's description and the record it was built from.
type cachedDesc struct {
	owner, stackID, provider, label string
	metadata                        []byte
	desc                            machineDesc
}

func (c *cachedDesc) matches(owner string, m *stack.Machine) bool {
	return c.owner == owner && c.stackID == m.StackID && c.provider == m.Provider && c.label == m.Label && bytes.Equal(c.metadata, m.Metadata)
}

// description returns the machine's description, from the cache when its
// record has not changed.
func (c *Collector) description(owner, id string, m *stack.Machine) machineDesc {
	if m == nil {
		return describe(owner, id, nil)
	}
	c.mu.Lock()
	cd, ok := c.descs[id]
	c.mu.Unlock()
	if ok && cd.matches(owner, m) {
		return cd.desc
	}
	d := describe(owner, id, m)
	c.mu.Lock()
	if c.descs == nil {
		c.descs = map[string]cachedDesc{}
	}
	c.descs[id] = cachedDesc{owner: owner, stackID: m.StackID, provider: m.Provider, label: m.Label, metadata: bytes.Clone(m.Metadata), desc: d}
	c.mu.Unlock()
	return d
}

// prune drops the descriptions of machines that no longer exist once the
// cache is much larger than the fleet.
func (c *Collector) prune(ctx context.Context) error {
	c.mu.Lock()
	n := len(c.descs)
	c.mu.Unlock()
	if n < maxCachedDescs {
		return nil
	}
	all, err := c.Machines.ListMachines(ctx, store.MachineFilter{})
	if err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	live := make(map[string]bool, len(all))
	for _, m := range all {
		live[m.ID] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.descs {
		if !live[id] {
			delete(c.descs, id)
		}
	}
	return nil
}

// maxCachedDescs is the cache size past which deleted machines are pruned.
const maxCachedDescs = 100_000

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
	// Every machine with history may have a point in every period.
	seen := 0
	for i := range recs {
		if i == 0 || recs[i].MachineID != recs[i-1].MachineID {
			seen++
		}
	}
	frames := make([]*dataframe.DataFrame, n)
	for i := range frames {
		s := begin.Add(time.Duration(i) * period)
		frames[i] = dataframe.New(s, s.Add(period))
		if seen > 0 {
			frames[i].Usage[ServiceInstance] = make([]dataframe.DataPoint, 0, seen)
		}
	}
	running := make([]time.Duration, n)
	qtys := map[time.Duration]decimal.Decimal{}
	for i, groups := 0, 0; i < len(recs); groups++ {
		if groups%1024 == 0 {
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
		id := group[0].MachineID
		owner := scope
		if m := byID[id]; m != nil && m.OwnerID != "" {
			owner = m.OwnerID
		}
		desc := c.description(owner, id, byID[id])
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
	for _, f := range frames {
		if pts, ok := f.Usage[ServiceInstance]; ok && len(pts) == 0 {
			delete(f.Usage, ServiceInstance)
		}
	}
	if err := c.prune(ctx); err != nil {
		return nil, fmt.Errorf("collect %s: %w", scope, err)
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
	if len(m.Metadata) == 0 {
		return d
	}
	var mm machineMeta
	if err := json.Unmarshal(m.Metadata, &mm); err != nil {
		return d // metadata that is not a JSON object describes nothing
	}
	for _, f := range [...]struct {
		key  string
		vals [4]json.RawMessage
	}{
		{KeySize, [4]json.RawMessage{mm.Size, mm.InstanceType, mm.SizeSlug, mm.Flavor}},
		{KeyRegion, [4]json.RawMessage{mm.Region, mm.AvailabilityZone, mm.Zone}},
		{KeyImage, [4]json.RawMessage{mm.Image, mm.AMI, mm.ImageID}},
	} {
		for _, raw := range f.vals {
			if v := scalar(raw); v != "" {
				d.metadata[f.key] = v
				break
			}
		}
	}
	return d
}

// scalar is a JSON string's value, or a number's or boolean's text; "" for
// anything else.
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case c == 't' || c == 'f':
		if b, err := strconv.ParseBool(string(raw)); err == nil {
			return strconv.FormatBool(b)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw)
	}
	return ""
}
