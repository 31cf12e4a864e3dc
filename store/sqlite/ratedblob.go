package sqlite

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/store"
)

// A rated period is one row of rated_periods whose data column holds every
// point of the period in a compact binary form: committing ten thousand
// points is one insert of a few hundred kilobytes instead of ten thousand
// indexed rows, and reading them back is one decode. Queries read the
// index columns (the points' time bounds) to skip periods, and decode the
// points of the periods they need; filters and group keys compare
// dictionary indexes, not strings.
//
// The form (all integers varints, as encoding/binary writes them):
//
//	byte 1                                the form's version
//	uvarint n, n × (uvarint len, bytes)   the dictionary: every string once
//	uvarint points
//	points × point
//
//	point: varint begin − period begin, varint end − period end,
//	       uvarint service, unit, qty, price (dictionary indexes; qty and
//	       price are decimal strings),
//	       uvarint g, g × (uvarint key, uvarint value)   groupby, by key
//	       uvarint m, m × (uvarint key, uvarint value)   metadata, by key
//
// Points are stored ordered by begin, then service, then the order they
// were given in: the order RatedPoints returns them.
const blobVersion = 1

// maxBlobStrings bounds the dictionary and maxBlobPoints the points a
// stored blob may claim, so that a damaged one cannot make a decode
// allocate without bound.
const (
	maxBlobStrings = 1 << 24
	maxBlobPoints  = 1 << 24
)

// errBlob is a stored period that does not decode.
var errBlob = errors.New("damaged rated period data")

// smallDecimal keys a decimal of at most 18 digits without formatting it.
type smallDecimal struct {
	coef int64
	exp  int32
}

// blobEncoder turns a period's points into the stored form. One encoder
// encodes one period at a time; reset, it encodes the next without
// allocating its tables again.
type blobEncoder struct {
	dict  map[string]uint64
	strs  []string
	decs  map[smallDecimal]uint64
	body  []byte
	keys  []string
	order []int
	// The points' begins and ends.
	begins, ends []int64
	// The sorted keys of the last groupby and metadata maps and their
	// indexes: a period's points mostly have the same keys.
	last [2]keySet
}

type keySet struct {
	keys []string
	idx  []uint64
}

// newBlobEncoder returns an encoder sized for n points.
func newBlobEncoder(n int) *blobEncoder {
	return &blobEncoder{dict: make(map[string]uint64, 8+2*n), decs: map[smallDecimal]uint64{}, body: make([]byte, 0, 64+40*n)}
}

// reset empties the encoder for the next period, letting go of the
// strings of the last.
func (e *blobEncoder) reset() {
	clear(e.dict)
	clear(e.strs)
	clear(e.decs)
	clear(e.keys)
	e.strs, e.body, e.keys, e.order, e.begins, e.ends = e.strs[:0], e.body[:0], e.keys[:0], e.order[:0], e.begins[:0], e.ends[:0]
	for i := range e.last {
		clear(e.last[i].keys)
		e.last[i].keys, e.last[i].idx = e.last[i].keys[:0], e.last[i].idx[:0]
	}
}

// encodePeriod encodes p with an encoder of the store's: commits are
// serialized, and an encoder's tables are as large as a period.
func (s *Store) encodePeriod(p *store.RatedPeriod, w store.PeriodWrite) (*periodRow, error) {
	e, _ := s.encoders.Get().(*blobEncoder)
	if e == nil {
		e = newBlobEncoder(len(p.Points))
	}
	defer func() {
		e.reset()
		s.encoders.Put(e)
	}()
	return e.encode(p, w)
}

func (e *blobEncoder) str(s string) uint64 {
	if i, ok := e.dict[s]; ok {
		return i
	}
	i := uint64(len(e.strs))
	e.dict[s] = i
	e.strs = append(e.strs, s)
	return i
}

// dec is the dictionary index of d's string, formatted once per distinct
// value.
func (e *blobEncoder) dec(d decimal.Decimal) uint64 {
	if d.NumDigits() > 18 {
		return e.str(d.String())
	}
	k := smallDecimal{d.CoefficientInt64(), d.Exponent()}
	if i, ok := e.decs[k]; ok {
		return i
	}
	i := e.str(d.String())
	e.decs[k] = i
	return i
}

// pairs appends m's pairs by key; which is 0 for a groupby, 1 for a
// metadata.
func (e *blobEncoder) pairs(m map[string]string, which int) {
	last := &e.last[which]
	if len(m) == len(last.keys) {
		at := len(e.body)
		e.body = binary.AppendUvarint(e.body, uint64(len(m)))
		same := true
		for i, k := range last.keys {
			v, ok := m[k]
			if !ok {
				same = false
				break
			}
			e.body = binary.AppendUvarint(e.body, last.idx[i])
			e.body = binary.AppendUvarint(e.body, e.str(v))
		}
		if same {
			return
		}
		e.body = e.body[:at]
	}
	e.keys = e.keys[:0]
	for k := range m {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	e.body = binary.AppendUvarint(e.body, uint64(len(e.keys)))
	last.keys, last.idx = append(last.keys[:0], e.keys...), last.idx[:0]
	for _, k := range e.keys {
		ki := e.str(k)
		last.idx = append(last.idx, ki)
		e.body = binary.AppendUvarint(e.body, ki)
		e.body = binary.AppendUvarint(e.body, e.str(m[k]))
	}
}

// periodRow is a checked period in the form rated_periods stores.
type periodRow struct {
	begin, end   int64 // the period's
	minB, maxB   int64 // bounds of the points' begins (the period's when it has none)
	minE, maxE   int64 // and of their ends
	points       int
	qty, price   string // the sums of the points'
	data         []byte
	uniformTimes bool // every point has the period's begin and end
}

// encodePeriod checks p's points, whose window w is, and encodes them.
func encodePeriod(p *store.RatedPeriod, w store.PeriodWrite) (*periodRow, error) {
	return newBlobEncoder(len(p.Points)).encode(p, w)
}

// encode is encodePeriod with e, which must be empty.
func (e *blobEncoder) encode(p *store.RatedPeriod, w store.PeriodWrite) (*periodRow, error) {
	n := len(p.Points)
	if n > maxBlobPoints {
		return nil, store.Invalidf("commit rated period of %s: %d points (at most %d)", p.Scope, n, maxBlobPoints)
	}
	row := &periodRow{begin: w.Begin, end: w.End, minB: w.Begin, maxB: w.Begin, minE: w.End, maxE: w.End, points: n, uniformTimes: true}
	e.begins, e.ends = slices.Grow(e.begins, n)[:n], slices.Grow(e.ends, n)[:n]
	begins, ends := e.begins, e.ends
	for i := range p.Points {
		b, e, err := store.CheckRatedPoint(p, w, i)
		if err != nil {
			return nil, err
		}
		begins[i], ends[i] = b, e
		if i == 0 {
			row.minB, row.maxB, row.minE, row.maxE = b, b, e, e
		}
		row.minB, row.maxB = min(row.minB, b), max(row.maxB, b)
		row.minE, row.maxE = min(row.minE, e), max(row.maxE, e)
		if b != w.Begin || e != w.End {
			row.uniformTimes = false
		}
	}
	for i := range n {
		e.order = append(e.order, i)
	}
	slices.SortStableFunc(e.order, func(a, b int) int {
		return cmp.Or(cmp.Compare(begins[a], begins[b]), strings.Compare(p.Points[a].Service, p.Points[b].Service))
	})
	var qty, price decimalSum
	for _, i := range e.order {
		pt := &p.Points[i]
		e.body = binary.AppendVarint(e.body, begins[i]-w.Begin)
		e.body = binary.AppendVarint(e.body, ends[i]-w.End)
		e.body = binary.AppendUvarint(e.body, e.str(pt.Service))
		e.body = binary.AppendUvarint(e.body, e.str(pt.Unit))
		qi, pi := e.dec(pt.Qty), e.dec(pt.Price)
		e.body = binary.AppendUvarint(e.body, qi)
		e.body = binary.AppendUvarint(e.body, pi)
		e.pairs(pt.Groupby, 0)
		e.pairs(pt.Metadata, 1)
		if err := qty.addString(e.strs[qi], 1); err != nil {
			return nil, store.Invalidf("commit rated period of %s: point %d qty: %v", p.Scope, i, err)
		}
		if err := price.addString(e.strs[pi], 1); err != nil {
			return nil, store.Invalidf("commit rated period of %s: point %d price: %v", p.Scope, i, err)
		}
	}
	size := 1 + binary.MaxVarintLen64*2 + len(e.body)
	for _, s := range e.strs {
		size += binary.MaxVarintLen64 + len(s)
	}
	data := make([]byte, 0, size)
	data = append(data, blobVersion)
	data = binary.AppendUvarint(data, uint64(len(e.strs)))
	for _, s := range e.strs {
		data = binary.AppendUvarint(data, uint64(len(s)))
		data = append(data, s...)
	}
	data = binary.AppendUvarint(data, uint64(n))
	row.data = append(data, e.body...)
	row.qty, row.price = qty.value().String(), price.value().String()
	return row, nil
}

// blobPoint is a decoded point: dictionary indexes, and where its groupby
// and metadata pairs are in the period's pairs.
type blobPoint struct {
	begin, end               int64
	svc, unit, qty, price    uint32
	gbAt, gbLen, mdAt, mdLen uint32
}

// periodBlob is a decoded period. Its tables can decode another period
// once nothing reads this one (decodePeriodInto); its strings are the
// period's own.
type periodBlob struct {
	strs   []string
	points []blobPoint
	pairs  []uint32 // key, value, key, value...
	decs   []decimal.Decimal
	parsed []bool
	lens   []int
}

// blobReader reads varints off a blob, remembering the first failure.
type blobReader struct {
	b   []byte
	err bool
}

func (r *blobReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// decodePeriod decodes a period's data; begin and end are the period's.
func decodePeriod(data []byte, begin, end int64) (*periodBlob, error) {
	return decodePeriodInto(nil, data, begin, end)
}

// decodePeriodInto is decodePeriod into the tables of pb, a period no
// longer read, when not nil.
func decodePeriodInto(pb *periodBlob, data []byte, begin, end int64) (*periodBlob, error) {
	if len(data) == 0 || data[0] != blobVersion {
		return nil, errBlob
	}
	r := &blobReader{b: data[1:]}
	ns := r.uvarint()
	if r.err || ns > maxBlobStrings || ns > uint64(len(r.b)) {
		return nil, errBlob
	}
	if pb == nil {
		pb = &periodBlob{}
	}
	// Every string shares one allocation.
	pb.lens = slices.Grow(pb.lens[:0], int(ns))[:ns]
	lens := pb.lens
	total := 0
	rest := r.b
	for i := range lens {
		l := r.uvarint()
		if r.err || l > uint64(len(r.b)) {
			return nil, errBlob
		}
		lens[i] = int(l)
		total += int(l)
		r.b = r.b[l:]
	}
	var all strings.Builder
	all.Grow(total)
	r.b = rest
	for range lens {
		l := r.uvarint()
		all.Write(r.b[:l])
		r.b = r.b[l:]
	}
	joined := all.String()
	clear(pb.strs)
	pb.strs = slices.Grow(pb.strs[:0], int(ns))[:ns]
	pb.decs, pb.parsed = pb.decs[:0], pb.parsed[:0]
	at := 0
	for i, l := range lens {
		pb.strs[i] = joined[at : at+l]
		at += l
	}
	np := r.uvarint()
	if r.err || np > maxBlobPoints || np > uint64(len(r.b)) {
		return nil, errBlob
	}
	pb.points = slices.Grow(pb.points[:0], int(np))[:np]
	// A pair takes two bytes at least: one allocation holds them all.
	pb.pairs = slices.Grow(pb.pairs[:0], len(r.b))
	idx := func() uint32 {
		v := r.uvarint()
		if v >= ns {
			r.err = true
		}
		return uint32(v)
	}
	readPairs := func() (at, n uint32) {
		c := r.uvarint()
		if c > uint64(len(r.b)) {
			r.err = true
			return 0, 0
		}
		at = uint32(len(pb.pairs))
		for range c {
			pb.pairs = append(pb.pairs, idx(), idx())
		}
		return at, uint32(c)
	}
	for i := range pb.points {
		p := &pb.points[i]
		p.begin = begin + r.varint()
		p.end = end + r.varint()
		p.svc, p.unit, p.qty, p.price = idx(), idx(), idx(), idx()
		p.gbAt, p.gbLen = readPairs()
		p.mdAt, p.mdLen = readPairs()
		if r.err {
			return nil, errBlob
		}
	}
	if len(r.b) != 0 {
		return nil, errBlob
	}
	return pb, nil
}

// decimal is the decimal at dictionary index i, parsed once.
func (pb *periodBlob) decimal(i uint32) (decimal.Decimal, error) {
	if len(pb.decs) != len(pb.strs) {
		pb.decs = slices.Grow(pb.decs[:0], len(pb.strs))[:len(pb.strs)]
		pb.parsed = slices.Grow(pb.parsed[:0], len(pb.strs))[:len(pb.strs)]
		clear(pb.parsed)
	}
	if !pb.parsed[i] {
		d, err := decimal.NewFromString(pb.strs[i])
		if err != nil {
			return decimal.Decimal{}, fmt.Errorf("%w: %q is not a decimal", errBlob, pb.strs[i])
		}
		pb.decs[i], pb.parsed[i] = d, true
	}
	return pb.decs[i], nil
}

// index is the dictionary index of s, -1 when the period has no such string.
func (pb *periodBlob) index(s string) int64 {
	return int64(slices.Index(pb.strs, s))
}

// attr is the dictionary index of the value key k (a dictionary index, or
// -1) reads on point p: its groupby value, else its metadata value; -1
// when it has neither.
func (pb *periodBlob) attr(p *blobPoint, k int64) int64 {
	if k < 0 {
		return -1
	}
	for _, span := range [2][2]uint32{{p.gbAt, p.gbLen}, {p.mdAt, p.mdLen}} {
		kv := pb.pairs[span[0] : span[0]+2*span[1]]
		for j := 0; j < len(kv); j += 2 {
			if int64(kv[j]) == k {
				return int64(kv[j+1])
			}
		}
	}
	return -1
}

// stringMap builds the map of n pairs from at; str, when not nil, gives
// the strings to keep in place of the period's.
func (pb *periodBlob) stringMap(at, n uint32, str func(string) string) map[string]string {
	m := make(map[string]string, n)
	kv := pb.pairs[at : at+2*n]
	for j := 0; j < len(kv); j += 2 {
		k, v := pb.strs[kv[j]], pb.strs[kv[j+1]]
		if str != nil {
			k, v = str(k), str(v)
		}
		m[k] = v
	}
	return m
}

// ratedPoint builds point p of scope as the store returns it, with the
// maps and id of desc when given, else maps of its own.
func (pb *periodBlob) ratedPoint(scope string, p *blobPoint, desc *internedDesc) (store.RatedPoint, error) {
	qty, err := pb.decimal(p.qty)
	if err != nil {
		return store.RatedPoint{}, err
	}
	price, err := pb.decimal(p.price)
	if err != nil {
		return store.RatedPoint{}, err
	}
	rp := store.RatedPoint{
		Scope: scope, Begin: store.FromNanos(p.begin), End: store.FromNanos(p.end),
		Service: pb.strs[p.svc], Unit: pb.strs[p.unit], Qty: qty, Price: price,
	}
	if desc != nil {
		rp.Groupby, rp.Metadata, rp.DescID = desc.groupby, desc.metadata, desc.id
	} else {
		rp.Groupby, rp.Metadata = pb.stringMap(p.gbAt, p.gbLen, nil), pb.stringMap(p.mdAt, p.mdLen, nil)
	}
	return rp, nil
}
