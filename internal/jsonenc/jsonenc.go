// Package jsonenc appends JSON values as encoding/json writes them, byte
// for byte, without reflection: for the hot paths that encode many small
// values (quote answers, billing reports). Their tests compare them with
// encoding/json.
package jsonenc

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// plain marks the bytes encoding/json writes as they are inside a string
// (printable ASCII but for " \\ < > &): bit c%64 of plain[c/64].
var plain = [4]uint64{
	0xffffffff_00000000 &^ (1<<'"' | 1<<'&' | 1<<'<' | 1<<'>'),
	0x7fffffff_ffffffff &^ (1 << ('\\' - 64)),
}

// PlainByte reports whether encoding/json writes c as it is inside a
// string.
func PlainByte(c byte) bool { return plain[c>>6]&(1<<(c&63)) != 0 }

// Plain reports whether encoding/json writes s as it is between its
// quotes: printable ASCII without " \\ < > &.
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !PlainByte(s[i]) {
			return false
		}
	}
	return true
}

// String appends s quoted as encoding/json quotes it (HTML-escaped): plain
// ASCII directly, anything else through encoding/json itself.
func String(b []byte, s string) []byte {
	if !Plain(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// StringMap appends m as encoding/json encodes a map[string]string: keys
// sorted, null for a nil map.
func StringMap(b []byte, m map[string]string) []byte {
	return appendMap(b, m, ":", "", "")
}

// StringMapIndent appends m as json.MarshalIndent encodes a
// map[string]string nested in an indented value: each entry on its own
// line starting with inner (a newline, the prefix and the entry's
// indentation), the closing brace after outer (the same for the map's own
// level); an empty map is "{}", a nil one null.
func StringMapIndent(b []byte, m map[string]string, outer, inner string) []byte {
	return appendMap(b, m, ": ", outer, inner)
}

// appendMap appends m's entries by key, each after inner and with colon
// between key and value, and outer before the closing brace.
func appendMap(b []byte, m map[string]string, colon, outer, inner string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	// Most maps (a point's desc) have a few entries: sort them on the
	// stack, values with their keys.
	type entry struct{ k, v string }
	var buf [8]entry
	entries := buf[:0]
	for k, v := range m {
		entries = append(entries, entry{k, v})
	}
	slices.SortFunc(entries, func(x, y entry) int { return strings.Compare(x.k, y.k) })
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, inner...)
		b = String(b, e.k)
		b = append(b, colon...)
		b = String(b, e.v)
	}
	b = append(b, outer...)
	return append(b, '}')
}

// zeros is the padding Decimal writes between a decimal point and the
// first significant digit.
const zeros = "000000000000000000000000000000000000000"

// Decimal appends d as encoding/json encodes a decimal.Decimal (its
// MarshalJSON): a coefficient of at most 18 digits without big.Int
// formatting, anything else (and any non-default formatting setting of
// the decimal package) through MarshalJSON itself.
func Decimal(b []byte, d decimal.Decimal) []byte {
	exp := d.Exponent()
	if decimal.MarshalJSONWithoutQuotes || !decimal.TrimTrailingZeros || decimal.UseScientificNotation ||
		exp > 18 || exp < -int32(len(zeros)) || d.NumDigits() > 18 {
		q, _ := d.MarshalJSON()
		return append(b, q...)
	}
	v := d.CoefficientInt64()
	b = append(b, '"')
	switch {
	case v == 0:
		b = append(b, '0')
	case exp >= 0:
		b = strconv.AppendInt(b, v, 10)
		b = append(b, zeros[:exp]...)
	default:
		if v < 0 {
			b = append(b, '-')
			v = -v
		}
		var buf [20]byte
		digits := strconv.AppendInt(buf[:0], v, 10)
		// The integer digits, then the fraction without trailing zeros,
		// padded with leading zeros when the coefficient is shorter.
		n, lead, frac := int(-exp), 0, digits
		if len(digits) > n {
			b = append(b, digits[:len(digits)-n]...)
			frac = digits[len(digits)-n:]
		} else {
			b = append(b, '0')
			lead = n - len(digits)
		}
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
		if len(frac) > 0 {
			b = append(b, '.')
			b = append(b, zeros[:lead]...)
			b = append(b, frac...)
		}
	}
	return append(b, '"')
}
