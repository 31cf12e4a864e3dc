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
	return c.scope(scope).collect(ctx, begin, period, n)
}

// scopeCollection collects consecutive batches of periods of one scope, as
// a processor catching up does. It lists the scope's machines once, at the
// first batch, rather than once per batch: a point describes its machine
// as the record is at collection time, and every batch of one catch-up is
// collected within moments of the first. A machine with history that a
// list older than the history lacks (created since, or deleted) makes it
// list again, once.
type scopeCollection struct {
	c        *Collector
	scope    string
	machines map[string]listedMachine // nil until listed
	// firstCreated is the earliest creation time of the listed machines
	// (zero when none has one).
	firstCreated time.Time
	// fresh: machines was listed after the current batch's history was
	// read; refreshed: it was listed again for a machine it lacked.
	fresh, refreshed bool
	// perFrame is the most points a frame of the last batch had (before
	// the first batch, the number of machines), which sizes the next batch.
	perFrame int
}

func (c *Collector) scope(scope string) *scopeCollection {
	return &scopeCollection{c: c, scope: scope}
}

func (sc *scopeCollection) list(ctx context.Context) error {
	machines, err := sc.c.Machines.ListMachines(ctx, store.MachineFilter{OwnerID: sc.scope})
	if err != nil {
		return fmt.Errorf("collect %s: list machines: %w", sc.scope, err)
	}
	// A collection keeps of each machine its owner and description, not
	// its record: ten thousand records are megabytes.
	sc.machines = make(map[string]listedMachine, len(machines))
	sc.firstCreated = time.Time{}
	epoch := time.Unix(0, 0)
	for _, m := range machines {
		owner := sc.scope
		if m.OwnerID != "" {
			owner = m.OwnerID
		}
		sc.machines[m.ID] = listedMachine{owner: owner, desc: sc.c.description(owner, m.ID, m)}
		if m.CreatedAt.After(epoch) && (sc.firstCreated.IsZero() || m.CreatedAt.Before(sc.firstCreated)) {
			sc.firstCreated = m.CreatedAt
		}
	}
	sc.fresh = true
	return nil
}

// listedMachine is what a collection keeps of a listed machine.
type listedMachine struct {
	owner string
	desc  machineDesc
}

// listed lists the scope's machines unless they are.
func (sc *scopeCollection) listed(ctx context.Context) error {
	if sc.machines != nil {
		return nil
	}
	return sc.list(ctx)
}

// machine returns the owner and description of machine id; a machine
// that does not exist (deleted, its history kept) is the scope's,
// described by its id.
func (sc *scopeCollection) machine(ctx context.Context, id string) (listedMachine, error) {
	m, ok := sc.machines[id]
	if !ok && !sc.fresh && !sc.refreshed {
		sc.refreshed = true
		if err := sc.list(ctx); err != nil {
			return listedMachine{}, err
		}
		m, ok = sc.machines[id]
	}
	if !ok {
		return listedMachine{owner: sc.scope, desc: describe(sc.scope, id, nil)}, nil
	}
	return m, nil
}

// batch collects the next batch of up to remaining periods from begin, one
// frame each: at most maxPeriods, and no more than about maxBatchPoints
// points at the last batch's points per frame.
func (sc *scopeCollection) batch(ctx context.Context, begin time.Time, period time.Duration, remaining, maxPeriods int) ([]*dataframe.DataFrame, error) {
	if err := sc.listed(ctx); err != nil {
		return nil, err
	}
	if sc.perFrame == 0 {
		sc.perFrame = max(1, len(sc.machines))
	}
	frames, err := sc.collect(ctx, begin, period, min(remaining, maxPeriods, max(1, maxBatchPoints/sc.perFrame)))
	if err != nil {
		return nil, err
	}
	sc.perFrame = 1
	for _, f := range frames {
		sc.perFrame = max(sc.perFrame, f.Len())
	}
	return frames, nil
}

// span is a machine's running time in one period of a batch. It holds no
// pointers, so the garbage collector does not scan a batch's spans.
type span struct {
	d    time.Duration
	desc int32 // index into the batch's descriptions
}

// collect returns the scope's usage in n consecutive periods from begin,
// one frame each, from one history query.
func (sc *scopeCollection) collect(ctx context.Context, begin time.Time, period time.Duration, n int) ([]*dataframe.DataFrame, error) {
	scope := sc.scope
	if period <= 0 || n < 1 {
		return nil, fmt.Errorf("collect %s: need a positive period and count, got %s × %d", scope, period, n)
	}
	begin = begin.UTC()
	end := begin.Add(time.Duration(n) * period)
	recs, err := sc.c.Machines.StateHistory(ctx, store.HistoryQuery{OwnerID: scope, From: begin, To: end})
	if err != nil {
		return nil, fmt.Errorf("collect %s: read state history: %w", scope, err)
	}
	sc.fresh = false
	if err := sc.listed(ctx); err != nil {
		return nil, err
	}
	running := make([]time.Duration, n)
	// each calls f with each machine's records in time order and its
	// running time per period in running[lo..hi], which f must zero.
	each := func(f func(group []stack.StateRecord, lo, hi int) error) error {
		for i, groups := 0, 0; i < len(recs); groups++ {
			if groups%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("collect %s: %w", scope, err)
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
			if lo, hi := uptime(group, begin, end, period, running); lo <= hi {
				if err := f(group, lo, hi); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// First the machines' descriptions and the number of points of each
	// period; then, computing the running times again, the points in
	// period order (machine order within a period), so that each frame is
	// allocated once at its size and written in one sequential pass.
	counts := make([]int, n)
	var descs []machineDesc
	err = each(func(group []stack.StateRecord, lo, hi int) error {
		m, err := sc.machine(ctx, group[0].MachineID)
		if err != nil {
			return err
		}
		descs = append(descs, m.desc)
		for k := lo; k <= hi; k++ {
			if running[k] > 0 {
				running[k] = 0
				counts[k]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	next := make([]int, n) // where period k's next span goes
	total := 0
	for k, c := range counts {
		next[k] = total
		total += c
	}
	spans := make([]span, total)
	desc := int32(0)
	err = each(func(_ []stack.StateRecord, lo, hi int) error {
		for k := lo; k <= hi; k++ {
			if d := running[k]; d > 0 {
				running[k] = 0
				spans[next[k]] = span{d: d, desc: desc}
				next[k]++
			}
		}
		desc++
		return nil
	})
	if err != nil {
		return nil, err
	}
	// One Decimal per distinct duration, shared by its points.
	qtys := map[time.Duration]decimal.Decimal{}
	var lastD time.Duration
	var lastQty decimal.Decimal
	frames := make([]*dataframe.DataFrame, n)
	for k := range frames {
		s := begin.Add(time.Duration(k) * period)
		frames[k] = dataframe.New(s, s.Add(period))
		if counts[k] == 0 {
			continue
		}
		pts := make([]dataframe.DataPoint, counts[k])
		for i, sp := range spans[next[k]-counts[k] : next[k]] {
			if sp.d != lastD {
				q, ok := qtys[sp.d]
				if !ok {
					q = Hours(sp.d)
					qtys[sp.d] = q
				}
				lastD, lastQty = sp.d, q
			}
			d := &descs[sp.desc]
			pts[i] = dataframe.DataPoint{Unit: UnitHour, Qty: lastQty, Groupby: d.groupby, Metadata: d.metadata}
		}
		frames[k].Usage[ServiceInstance] = pts
	}
	if err := sc.c.prune(ctx); err != nil {
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
