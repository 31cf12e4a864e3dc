package sqlite

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

func TestDecimalSumExact(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, "0"},
		{"tenths", []string{"0.1", "0.2"}, "0.3"},
		{"mixed scales", []string{"1", "0.001", "-0.5", "12.34"}, "12.841"},
		{"long fraction", []string{"0.0000000000000000001", "0.1"}, "0.1000000000000000001"},
		{"18 digits", []string{"999999999999999999", "999999999999999999"}, "1999999999999999998"},
		{"overflow on add", []string{"9000000000000000000", "9000000000000000000", "1"}, "18000000000000000001"},
		{"overflow on rescale", []string{"900000000000000000", "0.000000000000000001"}, "900000000000000000.000000000000000001"},
		{"scientific", []string{"1e3", "1"}, "1001"},
		{"negative", []string{"-0.1", "-0.2", "0.3"}, "0"},
		{"sign and zeros", []string{"+007.50", "0.50"}, "8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a decimalSum
			for _, v := range c.in {
				if err := a.addString(v, 1); err != nil {
					t.Fatal(err)
				}
			}
			got := a.value().String()
			if !decimal.RequireFromString(got).Equal(decimal.RequireFromString(c.want)) {
				t.Fatalf("sum %v = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

func TestDecimalSumMatchesDecimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a decimalSum
	want := decimal.Zero
	for i := range 20000 {
		var v string
		switch i % 4 {
		case 0:
			v = fmt.Sprintf("%d.%0*d", r.Int64N(1e6)-5e5, r.IntN(12)+1, r.Int64N(1e12))
		case 1:
			v = fmt.Sprintf("%d", r.Int64()/3)
		case 2:
			v = fmt.Sprintf("0.%018d%d", r.Int64N(1e18), r.IntN(10))
		default:
			v = decimal.New(r.Int64N(1e9), -int32(r.IntN(20))).String()
		}
		want = want.Add(decimal.RequireFromString(v))
		if err := a.addString(v, 1); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if err := a.addString(v, -1); err != nil {
				t.Fatal(err)
			}
			want = want.Sub(decimal.RequireFromString(v))
		}
	}
	if !a.value().Equal(want) {
		t.Fatalf("sum = %s, want %s", a.value(), want)
	}
}

func TestDecimalSumRefusesNonDecimals(t *testing.T) {
	for _, v := range []string{"abc", "1.2.3", "", ".", "1.5x"} {
		var a decimalSum
		if err := a.addString(v, 1); err == nil {
			t.Errorf("sum of %#v succeeded", v)
		}
	}
}
