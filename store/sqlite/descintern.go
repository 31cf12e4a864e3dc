package sqlite

import (
	"encoding/binary"
	"strings"
	"sync"
)

// maxInternedDescs bounds the descs a store remembers; when full it starts
// over (with new ids). Ten thousand machines make ten thousand descs.
const maxInternedDescs = 32 << 10

// descInterner gives every distinct (groupby, metadata) pair that
// EachRatedPoint streams one id and one pair of maps, for as long as it
// remembers it: a month of hourly periods repeats each machine's desc in
// every period, and readers (the report writers) work out once what
// depends only on it, keyed by store.RatedPoint.DescID.
//
// An id names one desc for the life of the store, never another: starting
// over gives the descs new ids.
type descInterner struct {
	max   int // maxInternedDescs; tests lower it
	mu    sync.Mutex
	descs map[string]*internedDesc
	// strs holds one copy of each string of the descs: keys and most
	// values repeat from desc to desc.
	strs map[string]string
	next uint64
}

type internedDesc struct {
	id                uint64
	groupby, metadata map[string]string
}

func newDescInterner() *descInterner {
	return &descInterner{max: maxInternedDescs, descs: map[string]*internedDesc{}, strs: map[string]string{}}
}

// descKey appends to key point p's groupby and metadata pairs, each map's
// pairs in stored (key) order, with lengths: equal keys are equal descs.
func (pb *periodBlob) descKey(key []byte, p *blobPoint) []byte {
	for _, span := range [2][2]uint32{{p.gbAt, p.gbLen}, {p.mdAt, p.mdLen}} {
		key = binary.AppendUvarint(key, uint64(span[1]))
		for _, s := range pb.pairs[span[0] : span[0]+2*span[1]] {
			key = binary.AppendUvarint(key, uint64(len(pb.strs[s])))
			key = append(key, pb.strs[s]...)
		}
	}
	return key
}

// intern returns the desc of point p, whose key descKey wrote into key,
// making it when it is new.
func (di *descInterner) intern(key []byte, pb *periodBlob, p *blobPoint) *internedDesc {
	di.mu.Lock()
	defer di.mu.Unlock()
	if d, ok := di.descs[string(key)]; ok {
		return d
	}
	if len(di.descs) >= di.max {
		clear(di.descs)
		clear(di.strs)
	}
	di.next++
	// The maps get the interner's copies of the strings: a period's
	// strings share one allocation, which a remembered desc must not keep.
	d := &internedDesc{id: di.next, groupby: pb.stringMap(p.gbAt, p.gbLen, di.str), metadata: pb.stringMap(p.mdAt, p.mdLen, di.str)}
	di.descs[string(key)] = d
	return d
}

// str is the interner's copy of s.
func (di *descInterner) str(s string) string {
	if c, ok := di.strs[s]; ok {
		return c
	}
	c := strings.Clone(s)
	di.strs[c] = c
	return c
}
