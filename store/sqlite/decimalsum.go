package sqlite

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/shopspring/decimal"
)

// decimalSum sums decimal strings exactly (rated quantities and prices, in
// summaries and in a rated period's stored sums). Values of up to 18
// significant digits are summed exactly in an int64 scaled by 10^scale (no
// allocation); anything longer, and any overflow, goes to the arbitrary
// precision accumulator. The result is big + small×10^-scale.
type decimalSum struct {
	small int64
	scale int32
	big   decimal.Decimal
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// parseSmall reads a plain decimal ("-12.345") of at most 18 digits as
// mantissa and scale; ok is false for anything else.
func parseSmall(s string) (m int64, scale int32, ok bool) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	digits, dot, seen := 0, false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			seen = true
			if digits == 18 {
				return 0, 0, false
			}
			if m != 0 || c != '0' {
				digits++
			}
			m = m*10 + int64(c-'0')
			if dot {
				scale++
			}
		case c == '.' && !dot:
			dot = true
		default:
			return 0, 0, false
		}
	}
	if !seen || scale > 18 {
		return 0, 0, false
	}
	if neg {
		m = -m
	}
	return m, scale, true
}

// mul10 returns x×10^k and whether it fits in an int64.
func mul10(x int64, k int32) (int64, bool) {
	if k == 0 || x == 0 {
		return x, true
	}
	if k > 18 {
		return 0, false
	}
	p := pow10[k]
	hi, lo := bits.Mul64(uint64(abs(x)), uint64(p))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	if x < 0 {
		return -int64(lo), true
	}
	return int64(lo), true
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// flush moves the int64 accumulator into the big one.
func (a *decimalSum) flush() {
	if a.small != 0 {
		a.big = a.big.Add(decimal.New(a.small, -a.scale))
	}
	a.small, a.scale = 0, 0
}

// addSmall adds m×10^-scale to the int64 accumulator; false when it cannot
// (the caller then adds it to the big one).
func (a *decimalSum) addSmall(m int64, scale int32) bool {
	target := max(a.scale, scale)
	cur, ok := mul10(a.small, target-a.scale)
	if !ok {
		a.flush()
		cur = 0
	}
	mm, ok := mul10(m, target-scale)
	if !ok {
		return false
	}
	sum := cur + mm
	if (mm > 0 && sum < cur) || (mm < 0 && sum > cur) {
		a.flush()
		a.small, a.scale = mm, target
		return true
	}
	a.small, a.scale = sum, target
	return true
}

// addString adds the decimal string s times sign (1 or -1).
func (a *decimalSum) addString(s string, sign int64) error {
	if m, scale, ok := parseSmall(s); ok && a.addSmall(sign*m, scale) {
		return nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return fmt.Errorf("%q is not a decimal", s)
	}
	if sign < 0 {
		d = d.Neg()
	}
	a.big = a.big.Add(d)
	return nil
}

func (a *decimalSum) value() decimal.Decimal {
	return a.big.Add(decimal.New(a.small, -a.scale))
}
