package hashmap

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/dataframe"
)

var (
	decOne      = decimal.NewFromInt(1)
	decMinusOne = decimal.NewFromInt(-1)
)

// Term modes: how a group's service-scoped threshold finishes its result.
const (
	modeNone    uint8 = iota // no service threshold: res = k × qty
	modeSvcFlat              // res = k × qty + c
	modeSvcRate              // res = k × qty × c
)

// term is one group's contribution to a price, prepared for one class of
// points: k is rate × flat after any field threshold.
type term struct {
	k, c     decimal.Decimal
	mode     uint8
	kfx, cfx fx
}

// combo is everything that does not depend on qty and price for one class
// of points: the groups' terms in the order CloudKitty sums them.
type combo struct {
	terms []term
	fast  bool // every k and c fits in fx
	// The last two fast results, reused for the next points of the class
	// with the same qty and incoming price: most points are whole hours,
	// and two keep the whole hour's while partial hours come and go.
	recent    [2]recentResult
	recentMRU int
}

// recentResult is a fast result of a class for a qty and incoming price.
type recentResult struct {
	qty, in fx
	d       decimal.Decimal
	set     bool
}

// acc is a group's running state while rules are applied, CloudKitty's
// _res[group].
type acc struct {
	touched  bool
	rate     decimal.Decimal
	flat     decimal.Decimal
	hasThr   bool
	thrSvc   bool
	thrLevel decimal.Decimal
	thrType  ruleType
	thrCost  decimal.Decimal
}

func (a *acc) apply(m mapping) {
	switch m.typ {
	case typeRate:
		a.rate = pyMul(a.rate, m.cost)
	case typeFlat:
		if m.cost.GreaterThan(a.flat) {
			a.flat = m.cost
		}
	}
}

// consider keeps the threshold if its level beats the group's best so far
// (which starts at -1): of the reached thresholds only the highest counts,
// and on a tie the one met first.
func (a *acc) consider(t threshold, svc bool) {
	best := decMinusOne
	if a.hasThr {
		best = a.thrLevel
	}
	if t.level.GreaterThan(best) {
		a.hasThr, a.thrSvc = true, svc
		a.thrLevel, a.thrType, a.thrCost = t.level, t.typ, t.cost
	}
}

// build applies the service's rules to one class of points: svcPos service
// levels reached, and per field the 1-based index of the matched mapping
// value (0: none) and the number of its levels reached. The order is
// CloudKitty's: service mappings, service thresholds, then field by field
// its mappings and its thresholds.
func (s *service) build(svcPos int, vals, poss []int32) *combo {
	accs := make([]acc, len(s.groups))
	var order []int
	touch := func(g int) *acc {
		a := &accs[g]
		if !a.touched {
			*a = acc{touched: true, rate: decOne, flat: decimal.Zero}
			order = append(order, g)
		}
		return a
	}
	for _, m := range s.mappings {
		touch(m.group).apply(m)
	}
	if svcPos > 0 {
		top := s.levels[svcPos-1]
		for _, t := range s.thresholds {
			if t.level.LessThanOrEqual(top) {
				touch(t.group).consider(t, true)
			}
		}
	}
	for i, f := range s.fields {
		if v := vals[i]; v > 0 {
			for _, m := range f.byValue[v-1] {
				touch(m.group).apply(m)
			}
		}
		if p := poss[i]; p > 0 {
			top := f.levels[p-1]
			for _, t := range f.thresholds {
				if t.level.LessThanOrEqual(top) {
					touch(t.group).consider(t, false)
				}
			}
		}
	}
	cb := &combo{terms: make([]term, 0, len(order)), fast: true}
	for _, g := range order {
		a := accs[g]
		rate, flat := a.rate, a.flat
		var t term
		switch {
		case !a.hasThr:
			// CloudKitty's default threshold: field scope, flat, cost 0.
			flat = pyAdd(flat, decimal.Zero)
		case !a.thrSvc && a.thrType == typeFlat:
			flat = pyAdd(flat, a.thrCost)
		case !a.thrSvc:
			rate = pyMul(rate, a.thrCost)
		case a.thrType == typeFlat:
			t.mode, t.c = modeSvcFlat, a.thrCost
		default:
			t.mode, t.c = modeSvcRate, a.thrCost
		}
		t.k = pyMul(rate, flat)
		var ok bool
		if t.kfx, ok = toFx(t.k); !ok {
			cb.fast = false
		}
		if t.mode != modeNone {
			if t.cfx, ok = toFx(t.c); !ok {
				cb.fast = false
			}
		}
		cb.terms = append(cb.terms, t)
	}
	return cb
}

// priceSlow is CloudKitty's add_rating_informations in Python's decimal
// context.
func (cb *combo) priceSlow(price, qty decimal.Decimal) decimal.Decimal {
	for _, t := range cb.terms {
		r := pyMul(t.k, qty)
		switch t.mode {
		case modeSvcFlat:
			r = pyAdd(r, t.c)
		case modeSvcRate:
			r = pyMul(r, t.c)
		}
		price = pyAdd(price, r)
	}
	return price
}

// priceFast is priceSlow in fixed point; false when a value does not fit,
// in which case nothing in Python would have been exact either way and the
// caller falls back to priceSlow.
func (cb *combo) priceFast(price, qty fx) (fx, bool) {
	for i := range cb.terms {
		t := &cb.terms[i]
		r, ok := t.kfx.mul(qty)
		if !ok {
			return fx{}, false
		}
		switch t.mode {
		case modeSvcFlat:
			r, ok = r.add(t.cfx)
		case modeSvcRate:
			r, ok = r.mul(t.cfx)
		}
		if !ok {
			return fx{}, false
		}
		if price, ok = price.add(r); !ok {
			return fx{}, false
		}
	}
	return price, true
}

// countLevels is the number of levels <= v.
func countLevels(levels []decimal.Decimal, lfx []fx, v decimal.Decimal, vfx fx, vok bool) int {
	if len(levels) == 0 {
		return 0
	}
	if vok && lfx != nil && len(lfx) <= 8 {
		n := 0
		for _, l := range lfx {
			c, ok := l.cmp(vfx)
			if !ok {
				n = -1
				break
			}
			if c > 0 {
				break
			}
			n++
		}
		if n >= 0 {
			return n
		}
	} else if vok && lfx != nil {
		fast := true
		n := sort.Search(len(lfx), func(i int) bool {
			c, ok := lfx[i].cmp(vfx)
			if !ok {
				fast = false
			}
			return c > 0
		})
		if fast {
			return n
		}
	}
	return sort.Search(len(levels), func(i int) bool { return levels[i].GreaterThan(v) })
}

// Limits of a Pricer's caches, so that no input makes them grow without
// bound.
const (
	denseCombos   = 1024
	maxCombos     = 1 << 16
	maxMemo       = 1 << 16
	resultSlots   = 1 << 12
	ctxCheckEvery = 4096
)

type svcCache struct {
	dense  []*combo
	sparse map[uint64]*combo
	// memo, per field with thresholds, maps a value to its class.
	memo []map[string]uint64
}

// Pricer prices points with one Rules. It caches per class of points and is
// not safe for concurrent use: use one per goroutine.
type Pricer struct {
	rules   *Rules
	caches  map[*service]*svcCache
	results [resultSlots]resultSlot
	vals    []int32
	poss    []int32
	noFast  bool // tests: price with decimals only

	// The last two qtys converted (qty).
	qtys   [2]qtyEntry
	qtyMRU int
}

type qtyEntry struct {
	d       decimal.Decimal
	f       fx
	ok, set bool
	// svcPos is the number of svc's levels reached by d.
	svc    *service
	svcPos int
}

// priceFx is toFx with a shortcut for the zero Decimal, the price of a
// point no module has priced yet.
func priceFx(d decimal.Decimal) (fx, bool) {
	if d == (decimal.Decimal{}) {
		return fx{}, true
	}
	return toFx(d)
}

// NewPricer returns a Pricer with empty caches.
func (r *Rules) NewPricer() *Pricer {
	return &Pricer{rules: r, caches: map[*service]*svcCache{}}
}

// Process prices every point of the frame in place (the FrameProcessor
// shape): price = incoming price + Σ over groups. On an error the frame is
// partly priced and must be discarded.
func (r *Rules) Process(ctx context.Context, f *dataframe.DataFrame) error {
	return r.NewPricer().PriceFrame(ctx, f)
}

func (p *Pricer) cache(s *service) *svcCache {
	c, ok := p.caches[s]
	if !ok {
		c = &svcCache{memo: make([]map[string]uint64, len(s.fields))}
		if s.sizeOK && s.size <= denseCombos {
			c.dense = make([]*combo, s.size)
		} else {
			c.sparse = map[uint64]*combo{}
		}
		p.caches[s] = c
		if n := len(s.fields); len(p.vals) < n {
			p.vals, p.poss = make([]int32, n), make([]int32, n)
		}
	}
	return c
}

// PriceFrame prices every point of the frame in place.
func (p *Pricer) PriceFrame(ctx context.Context, f *dataframe.DataFrame) error {
	for _, name := range f.Services() {
		s := p.rules.services[name]
		if s == nil {
			continue
		}
		c := p.cache(s)
		pts := f.Usage[name]
		for i := range pts {
			if i%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("price %s: %w", name, err)
				}
			}
			price, err := p.price(s, c, &pts[i])
			if err != nil {
				return fmt.Errorf("price %s point %d: %w", name, i, err)
			}
			pts[i].Price = price
		}
	}
	return nil
}

// Price returns the point's new price (its price plus the hashmap's) as a
// point of service; the point is not changed.
func (p *Pricer) Price(service string, pt *dataframe.DataPoint) (decimal.Decimal, error) {
	s := p.rules.services[service]
	if s == nil {
		return pt.Price, nil
	}
	return p.price(s, p.cache(s), pt)
}

// qty returns the entry of a qty: its fixed-point value and, for the
// service last asked, its number of service levels reached. The last two
// distinct qtys are remembered: Decimals are immutable, so the same Decimal
// (same coefficient pointer and exponent; the collector shares one per
// distinct duration) has the same value. Two entries keep the whole hour,
// the common qty, while partial hours come and go.
func (p *Pricer) qty(d decimal.Decimal) *qtyEntry {
	for i := range p.qtys {
		if e := &p.qtys[i]; e.set && e.d == d {
			p.qtyMRU = i
			return e
		}
	}
	f, ok := toFx(d)
	p.qtyMRU = 1 - p.qtyMRU
	e := &p.qtys[p.qtyMRU]
	*e = qtyEntry{d: d, f: f, ok: ok, set: true}
	return e
}

func (p *Pricer) price(s *service, c *svcCache, pt *dataframe.DataPoint) (decimal.Decimal, error) {
	q := p.qty(pt.Qty)
	qf, qok := q.f, q.ok
	svcPos := 0
	if len(s.levels) > 0 {
		if q.svc != s {
			q.svc, q.svcPos = s, countLevels(s.levels, s.levelsFx, pt.Qty, qf, qok)
		}
		svcPos = q.svcPos
	}
	var cb *combo
	if s.sizeOK {
		// The class number: each field's value looked up once, groupby
		// first, then metadata (Desc's precedence, without building it).
		key := uint64(svcPos) * s.svcStride
		for i, f := range s.fields {
			v, ok := pt.Groupby[f.name]
			if !ok {
				if v, ok = pt.Metadata[f.name]; !ok {
					continue
				}
			}
			if len(f.levels) == 0 {
				key += uint64(f.table.index(v)) * s.strides[i]
				continue
			}
			cls, err := p.classify(s, c, i, f, v)
			if err != nil {
				return decimal.Decimal{}, err
			}
			key += cls * s.strides[i]
		}
		cb = p.combo(s, c, svcPos, key)
	} else {
		var err error
		if cb, err = p.comboWide(s, c, svcPos, pt); err != nil {
			return decimal.Decimal{}, err
		}
	}
	if len(cb.terms) == 0 {
		return pt.Price, nil
	}
	if cb.fast && qok && !p.noFast {
		if pf, ok := priceFx(pt.Price); ok {
			for i := range cb.recent {
				if e := &cb.recent[i]; e.set && e.qty == qf && e.in == pf {
					cb.recentMRU = i
					return e.d, nil
				}
			}
			if r, ok := cb.priceFast(pf, qf); ok {
				d := p.result(r)
				cb.recentMRU = 1 - cb.recentMRU
				cb.recent[cb.recentMRU] = recentResult{qty: qf, in: pf, d: d, set: true}
				return d, nil
			}
		}
	}
	return cb.priceSlow(pt.Price, pt.Qty), nil
}

// classify returns the class of value v of field f (the i-th of s), which
// has thresholds: vals × (levels+1) + poss, where vals is the 1-based index
// of the matched mapping value (0: none) and poss the number of levels
// reached.
func (p *Pricer) classify(s *service, c *svcCache, i int, f *field, v string) (uint64, error) {
	if cls, ok := c.memo[i][v]; ok {
		return cls, nil
	}
	num, err := decimal.NewFromString(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("service %s field %s: value %q: %w", s.name, f.name, v, ErrNotANumber)
	}
	vi := f.table.index(v)
	pos := sort.Search(len(f.levels), func(j int) bool { return f.levels[j].GreaterThan(num) })
	cls := uint64(vi)*uint64(len(f.levels)+1) + uint64(pos)
	if c.memo[i] == nil {
		c.memo[i] = map[string]uint64{}
	}
	if len(c.memo[i]) < maxMemo {
		c.memo[i][v] = cls
	}
	return cls, nil
}

// combo returns the class numbered key, building it on first use.
func (p *Pricer) combo(s *service, c *svcCache, svcPos int, key uint64) *combo {
	if c.dense != nil {
		if cb := c.dense[key]; cb != nil {
			return cb
		}
	} else if cb, ok := c.sparse[key]; ok {
		return cb
	}
	for i, f := range s.fields {
		cls, width := key/s.strides[i]%f.radix, uint64(len(f.levels)+1)
		p.vals[i], p.poss[i] = int32(cls/width), int32(cls%width)
	}
	cb := s.build(svcPos, p.vals, p.poss)
	if c.dense != nil {
		c.dense[key] = cb
	} else if len(c.sparse) < maxCombos {
		c.sparse[key] = cb
	}
	return cb
}

// comboWide builds the class of a point of a service whose class space is
// too large to number.
func (p *Pricer) comboWide(s *service, c *svcCache, svcPos int, pt *dataframe.DataPoint) (*combo, error) {
	for i, f := range s.fields {
		v, ok := pt.Field(f.name)
		var cls uint64
		switch {
		case !ok:
		case len(f.levels) == 0:
			cls = uint64(f.table.index(v))
		default:
			var err error
			if cls, err = p.classify(s, c, i, f, v); err != nil {
				return nil, err
			}
		}
		width := uint64(len(f.levels) + 1)
		p.vals[i], p.poss[i] = int32(cls/width), int32(cls%width)
	}
	return s.build(svcPos, p.vals, p.poss), nil
}

// resultSlot is an entry of the direct-mapped cache of results.
type resultSlot struct {
	key fx
	ok  bool
	d   decimal.Decimal
}

// result turns a fixed-point price into a Decimal, sharing the Decimal of
// an equal recent result (Decimals are immutable) to avoid allocating.
func (p *Pricer) result(r fx) decimal.Decimal {
	h := uint64(r.v)*0x9E3779B97F4A7C15 ^ uint64(r.s)
	slot := &p.results[h>>(64-12)]
	if slot.ok && slot.key == r {
		return slot.d
	}
	d := r.decimal()
	*slot = resultSlot{key: r, ok: true, d: d}
	return d
}
