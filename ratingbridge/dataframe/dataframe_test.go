package dataframe

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestDesc(t *testing.T) {
	p := DataPoint{
		Groupby:  map[string]string{"machine_id": "m1", "size": "from-groupby"},
		Metadata: map[string]string{"size": "from-metadata", "region": "eu"},
	}
	desc := p.Desc()
	if desc["size"] != "from-groupby" || desc["region"] != "eu" || desc["machine_id"] != "m1" || len(desc) != 3 {
		t.Fatalf("Desc() = %v", desc)
	}
	desc["size"] = "changed"
	if p.Groupby["size"] != "from-groupby" {
		t.Fatal("Desc() must return a new map")
	}
	for k, want := range map[string]string{"size": "from-groupby", "region": "eu", "machine_id": "m1"} {
		if v, ok := p.Field(k); !ok || v != want {
			t.Errorf("Field(%q) = %q, %v", k, v, ok)
		}
	}
	if _, ok := p.Field("nope"); ok {
		t.Error("Field(nope) found")
	}
	var empty DataPoint
	if len(empty.Desc()) != 0 {
		t.Error("empty point has a desc")
	}
}

func TestPointJSON(t *testing.T) {
	p := DataPoint{Unit: "hour", Qty: d("0.333333333"), Price: d("0.0784"),
		Groupby: map[string]string{"machine_id": "m1", "size": "g"}, Metadata: map[string]string{"size": "m", "region": "eu"}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const v2 = `{"vol":{"unit":"hour","qty":"0.333333333"},"rating":{"price":"0.0784"},"groupby":{"machine_id":"m1","size":"g"},"metadata":{"region":"eu","size":"m"}}`
	if string(b) != v2 {
		t.Fatalf("v2 JSON\n%s\nwant\n%s", b, v2)
	}
	lb, err := p.MarshalLegacyJSON()
	if err != nil {
		t.Fatal(err)
	}
	const legacy = `{"vol":{"unit":"hour","qty":"0.333333333"},"rating":{"price":"0.0784"},"desc":{"machine_id":"m1","region":"eu","size":"g"}}`
	if string(lb) != legacy {
		t.Fatalf("legacy JSON\n%s\nwant\n%s", lb, legacy)
	}
	var back DataPoint
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Qty.Equal(p.Qty) || !back.Price.Equal(p.Price) || back.Groupby["size"] != "g" || back.Metadata["size"] != "m" {
		t.Fatalf("v2 round trip: %+v", back)
	}
	var fromLegacy DataPoint
	if err := json.Unmarshal(lb, &fromLegacy); err != nil {
		t.Fatal(err)
	}
	if fromLegacy.Groupby["region"] != "eu" || len(fromLegacy.Metadata) != 0 || !fromLegacy.Price.Equal(p.Price) {
		t.Fatalf("legacy decode: desc becomes groupby: %+v", fromLegacy)
	}
}

func TestPointJSONDecodeRules(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		check   func(DataPoint) bool
	}{
		{in: `{"vol":{"qty":1.5}}`, check: func(p DataPoint) bool {
			return p.Unit == DefaultUnit && p.Qty.Equal(d("1.5")) && p.Price.IsZero() && p.Groupby != nil && p.Metadata != nil
		}},
		{in: `{"vol":{"qty":"2","unit":"GiB"},"rating":{"price":0.121}}`, check: func(p DataPoint) bool {
			return p.Price.Equal(d("0.121")) && p.Unit == "GiB"
		}},
		{in: `{"vol":{"qty":"1"},"rating":{}}`, check: func(p DataPoint) bool { return p.Price.IsZero() }},
		{in: `{"rating":{"price":"1"}}`, err: "vol: required"},
		{in: `{"vol":{"unit":"x"}}`, err: "vol.qty: required"},
		{in: `{"vol":{"qty":"abc"}}`, err: "decode data point"},
		{in: `[]`, err: "decode data point"},
	} {
		var p DataPoint
		err := json.Unmarshal([]byte(tc.in), &p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !tc.check(p) {
			t.Errorf("%s: %+v %v", tc.in, p, err)
		}
	}
}

func TestFrameJSON(t *testing.T) {
	start := time.Date(2025, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	f := New(start, start.Add(time.Hour))
	f.Add("instance", DataPoint{Unit: "hour", Qty: d("1"), Price: d("0.02"), Groupby: map[string]string{"machine_id": "m1"}})
	f.Add("volume", DataPoint{Unit: "GiB", Qty: d("10"), Metadata: map[string]string{"type": "ssd"}})
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"period":{"begin":"2025-01-01T00:00:00Z","end":"2025-01-01T01:00:00Z"},"usage":{"instance":[{"vol":{"unit":"hour","qty":"1"},"rating":{"price":"0.02"},"groupby":{"machine_id":"m1"},"metadata":{}}],"volume":[{"vol":{"unit":"GiB","qty":"10"},"rating":{"price":"0"},"groupby":{},"metadata":{"type":"ssd"}}]}}`
	if string(b) != want {
		t.Fatalf("frame JSON\n%s\nwant\n%s", b, want)
	}
	var back DataFrame
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Start.Equal(start) || back.Len() != 2 || !back.Total().Equal(d("0.02")) || back.Services()[1] != "volume" {
		t.Fatalf("round trip: %+v", back)
	}
	lb, err := f.MarshalLegacyJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lb), `"desc":{"machine_id":"m1"}`) {
		t.Fatalf("legacy frame: %s", lb)
	}
	var fromLegacy DataFrame
	if err := json.Unmarshal(lb, &fromLegacy); err != nil || fromLegacy.Usage["volume"][0].Groupby["type"] != "ssd" {
		t.Fatalf("legacy frame decode: %+v %v", fromLegacy, err)
	}
	for _, bad := range []string{`{"usage":{}}`, `{"period":{"begin":"2025-01-01T00:00:00Z","end":"2025-01-01T01:00:00Z"}}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
