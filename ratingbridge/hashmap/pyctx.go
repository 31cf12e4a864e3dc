package hashmap

import (
	"math/big"

	"github.com/shopspring/decimal"
)

// CloudKitty computes with Python's decimal module in its default context:
// every arithmetic result is rounded to 28 significant digits, half to even.
// Prices match it digit for digit only if we round the same way after every
// operation it performs (assignments, such as a flat mapping's cost becoming
// the group's flat, are not operations and are not rounded).
const pyPrecision = 28

var (
	bigTen = big.NewInt(10)
	pow28  = new(big.Int).Exp(bigTen, big.NewInt(pyPrecision), nil)
)

// pyRound rounds d to pyPrecision significant digits, half to even, as
// Python's decimal context does after an operation.
func pyRound(d decimal.Decimal) decimal.Decimal {
	n := d.NumDigits()
	if n <= pyPrecision {
		return d
	}
	drop := int64(n - pyPrecision)
	coef := d.Coefficient()
	neg := coef.Sign() < 0
	coef.Abs(coef)
	div := new(big.Int).Exp(bigTen, big.NewInt(drop), nil)
	q, r := new(big.Int).QuoRem(coef, div, new(big.Int))
	// half to even: compare 2r with div.
	r.Lsh(r, 1)
	switch c := r.Cmp(div); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	exp := d.Exponent() + int32(drop)
	if q.Cmp(pow28) == 0 { // 99…9 rounded up to 10^28: keep 28 digits
		q.Quo(q, bigTen)
		exp++
	}
	if neg {
		q.Neg(q)
	}
	return decimal.NewFromBigInt(q, exp)
}

// pyMul is Python's a * b in the default context.
func pyMul(a, b decimal.Decimal) decimal.Decimal { return pyRound(a.Mul(b)) }

// pyAdd is Python's a + b in the default context.
func pyAdd(a, b decimal.Decimal) decimal.Decimal { return pyRound(a.Add(b)) }
