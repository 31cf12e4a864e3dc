package hashmap

import (
	"math/bits"
	"math/rand/v2"
)

// valueTable finds the index of a field's mapping value. When it can, it
// is a perfect hash: a multiplicative hash of a key read from the value's
// length and its first and last bytes picks the one slot the value can be
// in, and one string comparison confirms it, which is several times cheaper
// than a Go map lookup (no hashing of the whole string, no probing). Value
// sets no such hash separates use the map.
type valueTable struct {
	slots []valueSlot // nil: use values
	mul   uint64
	shift uint8
	// values maps a value to its 1-based index.
	values map[string]int32
}

type valueSlot struct {
	key uint64 // strKey(s)
	s   string
	idx int32 // 0: empty
}

// Limits of the perfect-hash search: tables are at most 8 times the
// number of values (rounded up to a power of two) and at most
// maxTableSlots slots; each size gets tableTries multipliers.
const (
	maxTableSlots = 1 << 12
	tableTries    = 64
)

// strKey reads a key from s: its length with its first and last four
// bytes (or, when shorter, its first, middle and last bytes). Strings of up
// to 8 bytes are read whole; longer ones that agree at both ends get the
// same key and are told apart by the comparison that follows (or, at
// compile time, make the search fail).
func strKey(s string) uint64 {
	if n := len(s); n >= 4 {
		return longKey(s, n)
	}
	return shortKey(s)
}

func longKey(s string, n int) uint64 {
	return (le32(s) | le32(s[n-4:])<<32) + uint64(n)
}

func le32(s string) uint64 {
	_ = s[3]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
}

func shortKey(s string) uint64 {
	n := len(s)
	if n == 0 {
		return 0
	}
	return uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16 | uint64(n)<<24
}

// newValueTable indexes values (1-based, in order) and searches for a
// perfect hash of them. The search is deterministic.
func newValueTable(values []string) valueTable {
	t := valueTable{values: make(map[string]int32, len(values))}
	for i, v := range values {
		t.values[v] = int32(i + 1)
	}
	if len(values) == 0 {
		return t
	}
	keys := make([]uint64, len(values))
	for i, v := range values {
		keys[i] = strKey(v)
	}
	rnd := rand.New(rand.NewPCG(0x6b6c6f7564, uint64(len(values))))
	used := make([]bool, maxTableSlots)
	for size := max(8, nextPow2(len(values))); size <= min(maxTableSlots, 8*nextPow2(len(values))); size *= 2 {
		shift := uint8(64 - bits.TrailingZeros(uint(size)))
		for range tableTries {
			mul := rnd.Uint64() | 1
			clear(used[:size])
			ok := true
			for _, k := range keys {
				h := (k * mul) >> shift
				if used[h] {
					ok = false
					break
				}
				used[h] = true
			}
			if !ok {
				continue
			}
			t.slots, t.mul, t.shift = make([]valueSlot, size), mul, shift
			for i, v := range values {
				t.slots[(keys[i]*mul)>>shift] = valueSlot{key: keys[i], s: v, idx: int32(i + 1)}
			}
			return t
		}
	}
	return t
}

func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// index is the 1-based index of v, 0 when it is not a value of the table.
func (t *valueTable) index(v string) int32 {
	if t.slots == nil {
		return t.values[v]
	}
	var k uint64
	n := len(v)
	if n >= 4 {
		k = longKey(v, n)
	} else {
		k = shortKey(v)
	}
	e := &t.slots[(k*t.mul)>>t.shift]
	// The key holds all of a value of up to 8 bytes.
	if e.key == k && (n <= 8 && len(e.s) == n || e.s == v) {
		return e.idx
	}
	return 0
}
