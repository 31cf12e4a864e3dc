package hashmap

import (
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// fx is a decimal in int64 fixed point: v × 10^-s, 0 <= s <= maxScale.
// Every fx value has at most 19 significant digits, so an operation whose
// exact result is an fx is exact in Python's 28-digit context too: the fast
// path gives the same digits as the decimal path whenever it succeeds.
type fx struct {
	v int64
	s int32
}

const maxScale = 18

var pow10 = [maxScale + 1]int64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
}

// toFx converts d exactly, or reports false.
func toFx(d decimal.Decimal) (fx, bool) {
	if d.IsZero() {
		return fx{}, true
	}
	if d.NumDigits() > 18 {
		return toFxLong(d)
	}
	v, e := d.CoefficientInt64(), d.Exponent()
	if v == 0 {
		return fx{}, true
	}
	if e > 0 {
		if e > maxScale {
			return fx{}, false
		}
		w, ok := mulInt(v, pow10[e])
		return fx{v: w}, ok
	}
	s := -e
	for s > 0 && v%10 == 0 {
		v /= 10
		s--
	}
	if s > maxScale {
		return fx{}, false
	}
	return fx{v: v, s: s}, true
}

// toFxLong converts a decimal whose coefficient has more than 18 digits,
// which fits only if trailing zeros make up the difference (a cost stored
// as 16.0000000000000000000000000000). It allocates; it is off the common
// path.
func toFxLong(d decimal.Decimal) (fx, bool) {
	digits := d.Coefficient().String()
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	trimmed := strings.TrimRight(digits, "0")
	if len(trimmed) > 18 {
		return fx{}, false
	}
	v, err := strconv.ParseInt(trimmed, 10, 64)
	if err != nil {
		return fx{}, false
	}
	if neg {
		v = -v
	}
	return toFx(decimal.New(v, d.Exponent()+int32(len(digits)-len(trimmed))))
}

// decimal returns f as a Decimal (allocating).
func (f fx) decimal() decimal.Decimal { return decimal.New(f.v, -f.s) }

func abs64(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

// mulInt multiplies two int64 exactly, or reports false.
func mulInt(a, b int64) (int64, bool) {
	if a == math.MinInt64 || b == math.MinInt64 {
		return 0, false
	}
	hi, lo := bits.Mul64(abs64(a), abs64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if (a < 0) != (b < 0) {
		return -int64(lo), true
	}
	return int64(lo), true
}

func (a fx) mul(b fx) (fx, bool) {
	v, ok := mulInt(a.v, b.v)
	if !ok {
		return fx{}, false
	}
	s := a.s + b.s
	for s > maxScale {
		if v%10 != 0 {
			return fx{}, false
		}
		v /= 10
		s--
	}
	return fx{v: v, s: s}, true
}

// align returns a and b at the same scale, or false.
func align(a, b fx) (int64, int64, int32, bool) {
	switch {
	case a.s == b.s:
		return a.v, b.v, a.s, true
	case a.s < b.s:
		v, ok := mulInt(a.v, pow10[b.s-a.s])
		return v, b.v, b.s, ok
	default:
		v, ok := mulInt(b.v, pow10[a.s-b.s])
		return a.v, v, a.s, ok
	}
}

func (a fx) add(b fx) (fx, bool) {
	x, y, s, ok := align(a, b)
	if !ok {
		return fx{}, false
	}
	sum := x + y
	if (x >= 0) == (y >= 0) && (sum >= 0) != (x >= 0) {
		return fx{}, false
	}
	return fx{v: sum, s: s}, true
}

// cmp compares a and b, or reports false when they cannot be aligned.
func (a fx) cmp(b fx) (int, bool) {
	x, y, _, ok := align(a, b)
	if !ok {
		return 0, false
	}
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	}
	return 0, true
}

func levelsToFx(levels []decimal.Decimal) ([]fx, bool) {
	out := make([]fx, len(levels))
	for i, l := range levels {
		f, ok := toFx(l)
		if !ok {
			return nil, false
		}
		out[i] = f
	}
	return out, true
}
