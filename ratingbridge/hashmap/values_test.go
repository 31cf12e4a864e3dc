package hashmap

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge/dataframe"
)

// TestValueTable checks that a field's value table finds exactly its
// values, whether it found a perfect hash or fell back to the map, against
// probes that share lengths, ends and keys with the values.
func TestValueTable(t *testing.T) {
	many := make([]string, 3000)
	for i := range many {
		many[i] = fmt.Sprintf("m-%05d", i)
	}
	cases := []struct {
		name    string
		values  []string
		perfect bool // a perfect hash must be found
	}{
		{"sizes", []string{"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge"}, true},
		{"regions", []string{"us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"}, true},
		{"short", []string{"a", "b", "ab", "ba", "abc", "acb", "1", "64"}, true},
		{"one", []string{"x"}, true},
		// Long values alike at both ends: equal keys, no perfect hash.
		{"same ends", []string{"abcd-1-wxyz", "abcd-2-wxyz"}, false},
		{"uuids", []string{"f5600101-8fa2-4864-899e-ebcb7ed6b568", "a41fba37-2429-4f15-aa00-b5bc4bf557bf", "0052f884-461d-4e3a-9598-7e5391888209"}, true},
		{"many", many, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := newValueTable(tc.values)
			if tc.perfect && tab.slots == nil {
				t.Fatal("no perfect hash found")
			}
			want := map[string]int32{}
			for i, v := range tc.values {
				want[v] = int32(i + 1)
			}
			probes := []string{"", "x", "nan", "nano ", " nano", "abcd-3-wxyz", "abcd-1-wxy", "m-99999", "m-0000", "4xlargf", "us-east-2"}
			for _, v := range tc.values {
				probes = append(probes, v, v+"x", "x"+v, v[:len(v)-1], v[1:])
				b := []byte(v)
				b[len(b)/2] ^= 1
				probes = append(probes, string(b))
			}
			rnd := rand.New(rand.NewPCG(7, uint64(len(tc.values))))
			for range 2000 {
				b := make([]byte, rnd.IntN(12))
				for i := range b {
					b[i] = "abcdelmnorstux-0124"[rnd.IntN(19)]
				}
				probes = append(probes, string(b))
			}
			for _, p := range probes {
				if got := tab.index(p); got != want[p] {
					t.Errorf("index(%q) = %d, want %d", p, got, want[p])
				}
			}
		})
	}
}

// TestWideService prices points of a service whose class space is too
// large to number (more than 2^64 classes), which classifies each point
// afresh, and checks each price against a service with only the fields the
// point has, whose classes are numbered and cached.
func TestWideService(t *testing.T) {
	const nFields = 32
	rules := func(fields []int) *Rules {
		var b rb
		s := b.service("instance")
		for _, i := range fields {
			f := b.field(s, fmt.Sprintf("f%d", i))
			b.fieldMapping(f, "", "1", "rate", fmt.Sprintf("1.%d", i+1))
			b.fieldMapping(f, "", "2", "flat", fmt.Sprintf("0.%02d", i+1))
			b.fieldMapping(f, "", "5", "flat", "0.5")
			if i%2 == 0 {
				b.fieldThreshold(f, "", "2", "rate", "0.9")
				b.fieldThreshold(f, "", fmt.Sprint(4+i%3), "flat", "0.125")
			}
		}
		b.svcMapping(s, "", "flat", "0.01")
		b.svcThreshold(s, "", "3", "rate", "0.5")
		r, err := Compile(&b.r)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	all := make([]int, nFields)
	for i := range all {
		all[i] = i
	}
	wide := rules(all)
	if wide.services["instance"].sizeOK {
		t.Fatal("the class space should be too large to number")
	}
	p := wide.NewPricer()
	rnd := rand.New(rand.NewPCG(3, 4))
	values := []string{"1", "2", "5", "7", "0"}
	for n := range 300 {
		var set []int
		md := map[string]string{}
		for i := range nFields {
			if rnd.IntN(6) == 0 {
				set = append(set, i)
				md[fmt.Sprintf("f%d", i)] = values[rnd.IntN(len(values))]
			}
		}
		pt := dataframe.DataPoint{Qty: decimal.New(int64(n%5+1), 0), Metadata: md}
		got, err := p.Price("instance", &pt)
		if err != nil {
			t.Fatal(err)
		}
		want, err := rules(set).NewPricer().Price("instance", &pt)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Fatalf("point %d %v: wide service prices %s, narrow %s", n, md, got, want)
		}
	}
}
