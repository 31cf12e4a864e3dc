package jsonenc

import (
	"encoding/json"
	"fmt"
	"math/big"
	"testing"

	"github.com/shopspring/decimal"
)

// TestMatchesEncodingJSON: every helper writes what encoding/json writes.
func TestMatchesEncodingJSON(t *testing.T) {
	maps := []map[string]string{
		nil,
		{},
		{"a": "b"},
		{"z": "1", "a": "2", "m": "<&>", "é": "\n\"\\", "": "", "\u2028": "\x01"},
		{"k1": "v", "k2": "v", "k3": "v", "k4": "v", "k5": "v", "k6": "v", "k7": "v", "k8": "v", "k9": "v", "k10": "v"},
		{"1": "", "2": "", "3": "", "4": "", "5": "", "6": "", "7": "", "8": ""},
		{"size": "large", "region": "us-east-1", "provider": "aws", "machine_id": "m-00001"},
		{"b": "<&>", "a": "é\"\\\n", "\u2028": "\x00", "z": "", "~": "\x7f"},
	}
	big := map[string]string{}
	for i := range 20 {
		big[fmt.Sprintf("k%02d", 19-i)] = fmt.Sprint(i)
	}
	maps = append(maps, big)
	for _, m := range maps {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := StringMap(nil, m); string(got) != string(want) {
			t.Errorf("StringMap(%q) = %s, want %s", m, got, want)
		}
		for k, v := range m {
			for _, s := range []string{k, v} {
				want, _ := json.Marshal(s)
				if got := String(nil, s); string(got) != string(want) {
					t.Errorf("String(%q) = %s, want %s", s, got, want)
				}
			}
		}
		// Nested one level down in an indented object.
		wrapped, err := json.MarshalIndent(map[string]map[string]string{"m": m}, "  ", "\t")
		if err != nil {
			t.Fatal(err)
		}
		got := "{\n  \t\"m\": " + string(StringMapIndent(nil, m, "\n  \t", "\n  \t\t")) + "\n  }"
		if got != string(wrapped) {
			t.Errorf("StringMapIndent(%q) =\n%s\nwant\n%s", m, got, wrapped)
		}
	}
}

// marshal is what encoding/json writes for v.
func marshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var decimals = []string{
	"0", "0.000", "-0", "1", "-1", "10", "0.1", "0.10", "-0.5", "12.345", "100.000",
	"0.0000001", "-0.0000000000000000000000000000000000001", "1e-39", "1e-40", "5e-100",
	"123456789012345678", "-123456789012345678", "1234567890123456789", "9223372036854775807",
	"-9223372036854775808", "12345678901234567890.123", "0.000123456789012345678",
	"1e18", "1e19", "7e40", "-3e5", "0.30000000000000004", "16.0000000000000000000000000000",
}

func TestDecimalMatchesMarshalJSON(t *testing.T) {
	var cases []decimal.Decimal
	for _, s := range decimals {
		cases = append(cases, decimal.RequireFromString(s))
	}
	cases = append(cases,
		decimal.Decimal{}, decimal.New(0, 5), decimal.New(0, -5), decimal.New(42, 3), decimal.New(-42, -1),
		decimal.New(7, 18), decimal.New(7, 19), decimal.New(1, -38), decimal.New(1, -39), decimal.New(1, -40),
		decimal.NewFromFloat(0.1), decimal.NewFromFloat(100), decimal.NewFromFloat(1e-7), decimal.NewFromFloat(-2.5e10),
		decimal.NewFromBigInt(new(big.Int).Lsh(big.NewInt(1), 80), -3),
	)
	for _, d := range cases {
		if got, want := string(Decimal(nil, d)), marshal(t, d); got != want {
			t.Errorf("Decimal(%s) (coefficient %s, exp %d) = %s, want %s", d, d.Coefficient(), d.Exponent(), got, want)
		}
	}
	// Appends to what is there.
	if got := string(Decimal([]byte("x:"), decimal.New(15, -1))); got != `x:"1.5"` {
		t.Errorf("Decimal appended = %s", got)
	}
}

func FuzzDecimal(f *testing.F) {
	for i, s := range decimals {
		d := decimal.RequireFromString(s)
		f.Add(d.CoefficientInt64(), int32(i)-20)
	}
	f.Fuzz(func(t *testing.T, v int64, exp int32) {
		d := decimal.New(v, exp%64)
		if got, want := string(Decimal(nil, d)), marshal(t, d); got != want {
			t.Fatalf("Decimal(New(%d, %d)) = %s, want %s", v, exp%64, got, want)
		}
	})
}

func BenchmarkStringMap(b *testing.B) {
	m := map[string]string{"size": "large", "region": "us-east-1", "provider": "aws", "machine_id": "m-00001"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for range b.N {
		buf = StringMap(buf[:0], m)
	}
}

func BenchmarkDecimal(b *testing.B) {
	ds := []decimal.Decimal{decimal.RequireFromString("0.7"), decimal.New(35, -3), decimal.NewFromInt(12)}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for i := range b.N {
		buf = Decimal(buf[:0], ds[i%len(ds)])
	}
}
