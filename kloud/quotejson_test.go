package kloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/ratingbridge"
	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// plainQuote decodes a quote body the plain way, as handleQuote did before
// the fast path: nil when it refuses it.
func plainQuote(body []byte) []ratingbridge.QuotePoint {
	var req quoteRequest
	if decodeBytes(body, &req) != nil || len(req.Points) == 0 || len(req.Points) > ratingbridge.MaxQuotePoints {
		return nil
	}
	out := make([]ratingbridge.QuotePoint, len(req.Points))
	for i, p := range req.Points {
		qty, err := decimalField("qty", p.Qty, true)
		if err != nil || qty.IsNegative() {
			return nil
		}
		out[i] = ratingbridge.QuotePoint{Service: p.Service, Qty: qty, Unit: p.Unit, Desc: p.Desc}
	}
	return out
}

var quoteBodies = []string{
	`{"points":[{"service":"instance","qty":2,"unit":"hour","desc":{"size":"large","region":"r"}}]}`,
	` { "points" : [ {"qty":"0.5","service":"instance"} , {"service":"volume","qty":1e2,"desc":{}} ] } `,
	`{"points":[{"service":"instance","qty":0.1,"desc":{"a":"1","a":"2"}}]}`,
	`{"points":[{"service":"instance","qty":" 1 "}]}`,
	`{"points":[{"service":"instance","qty":-1}]}`,
	`{"points":[{"service":"instance"}]}`,
	`{"points":[]}`,
	`{"points":[{"service":"instance","qty":1,"bogus":1}]}`,
	`{"points":[{"service":"inst\u0061nce","qty":1}]}`,
	`{"points":[{"service":"instance","qty":1,"desc":{"size":"smäll"}}]}`,
	`{"points":[{"service":"instance","qty":01}]}`,
	`{"points":[{"service":"instance","qty":1e400}]}`,
	`{"points":[{"service":"instance","qty":1}]} x`,
	`{"points":[{"service":"instance","qty":1},]}`,
	`{"points":[{"service":"instance","qty":1,"qty":2}]}`,
	`{"points":[{"service":null,"qty":1}]}`,
	`{"points":[{"service":"a","qty":"1.000000000000000000001"}]}`,
	`{"points":[{"service":"a","qty":0.30000000000000004}]}`,
	`{"points":[{"service":"a","qty":1}],"points":[]}`,
	`{"points":[{"service":"a","qty":1`,
	``,
	`{"points":[{"service":"i","qty":"0.5","desc":{"a":"1","b":"2"}},{"service":"i","qty":"0.5","desc":{}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"b":"1","a":"2"}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"a":"1", "b":"2"}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"a":"<1>","b":"&"}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"a":"1","a":"2","b":"3"}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"a":"1","a":"1"}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"":"","a":""}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":{"a":"1",}}]}`,
	`{"points":[{"service":"i","qty":1,"desc":null}]}`,
}

// answer is what writeQuoteAnswer writes for priced points.
func answer(t testing.TB, priced []ratingbridge.QuotedPoint, descs []string, total decimal.Decimal) []byte {
	t.Helper()
	var b bytes.Buffer
	points, rated := split(priced, total)
	if err := writeQuoteAnswer(&b, points, rated, descs); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// split is priced points as the points and what rating made of them.
func split(priced []ratingbridge.QuotedPoint, total decimal.Decimal) ([]ratingbridge.QuotePoint, ratingbridge.Rated) {
	points := make([]ratingbridge.QuotePoint, len(priced))
	rated := ratingbridge.Rated{Total: total}
	for i, p := range priced {
		points[i] = p.QuotePoint
		rated.Prices = append(rated.Prices, p.Price)
		rated.Units = append(rated.Units, p.Unit)
	}
	return points, rated
}

// answers returns the answer to fast-decoded points priced zero, with
// their desc texts, and writeJSON's answer to the same points decoded the
// plain way.
func answers(t testing.TB, fast []ratingbridge.QuotePoint, descs []string, plain []ratingbridge.QuotePoint) (got, want []byte) {
	priced := func(ps []ratingbridge.QuotePoint) []ratingbridge.QuotedPoint {
		out := make([]ratingbridge.QuotedPoint, len(ps))
		for i, p := range ps {
			out[i] = ratingbridge.QuotedPoint{QuotePoint: p, Price: decimal.Zero}
		}
		return out
	}
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, quoteResponse{Points: priced(plain), Total: decimal.Zero})
	return answer(t, priced(fast), descs, decimal.Zero), rec.Body.Bytes()
}

// wholeDesc is a fast-decoded point's desc: its map, or its text (then it
// has no map yet) as encoding/json reads it, which descMap reads alike.
func wholeDesc(t testing.TB, p ratingbridge.QuotePoint, text string) map[string]string {
	t.Helper()
	if text == "" {
		return p.Desc
	}
	if p.Desc != nil {
		t.Fatalf("a desc both as text %s and as map %v", text, p.Desc)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("desc text %s: %v", text, err)
	}
	if got := descMap(text); !reflect.DeepEqual(got, m) {
		t.Fatalf("descMap(%s) = %v, encoding/json reads %v", text, got, m)
	}
	return m
}

// checkEntries: the entries decodeQuoteFast located for each desc text
// are that text's keys and values.
func checkEntries(t testing.TB, body string, descs []string, entries descEntries) {
	t.Helper()
	if len(entries.from) != len(descs)+1 {
		t.Fatalf("entries of %d points, want %d", len(entries.from)-1, len(descs))
	}
	for i, text := range descs {
		got := map[string]string{}
		for _, b := range entries.bounds[entries.from[i]:entries.from[i+1]] {
			got[body[b[0]:b[1]]] = body[b[2]:b[3]]
		}
		if want := descMap(text); text != "" && !reflect.DeepEqual(got, want) || text == "" && len(got) > 0 {
			t.Fatalf("point %d: entries %v, desc text %s", i, got, text)
		}
	}
}

// TestQuoteFastPathMatchesPlainPath: whatever the fast path decodes, it
// decodes as the plain path does; what it gives up, the plain path words.
func TestQuoteFastPathMatchesPlainPath(t *testing.T) {
	for _, body := range quoteBodies {
		fast, descs, entries, ok := decodeQuoteFast(string(body))
		plain := plainQuote([]byte(body))
		if !ok {
			continue
		}
		checkEntries(t, string(body), descs, entries)
		if plain == nil {
			t.Errorf("%s: the fast path takes a body the plain path refuses", body)
			continue
		}
		if len(fast) != len(plain) {
			t.Fatalf("%s: %d points, plain %d", body, len(fast), len(plain))
		}
		for i := range fast {
			if fast[i].Service != plain[i].Service || fast[i].Unit != plain[i].Unit || !fast[i].Qty.Equal(plain[i].Qty) ||
				fast[i].Qty.String() != plain[i].Qty.String() || !reflect.DeepEqual(wholeDesc(t, fast[i], descs[i]), plain[i].Desc) {
				t.Errorf("%s: point %d = %+v (desc %s), plain %+v", body, i, fast[i], descs[i], plain[i])
			}
		}
		if got, want := answers(t, fast, descs, plain); !bytes.Equal(got, want) {
			t.Errorf("%s: answer\n%s\nwant\n%s", body, got, want)
		}
	}
	// The common shape takes the fast path, its desc copied as it is.
	common := `{"points":[{"service":"instance","qty":"0.5","unit":"hour","desc":{"region":"r","size":"large"}}]}`
	if _, descs, _, ok := decodeQuoteFast(common); !ok || descs[0] != `{"region":"r","size":"large"}` {
		t.Errorf("the fast path gives up a plain quote or its desc: %v %q", ok, descs)
	}
}

func FuzzQuoteFastPath(f *testing.F) {
	for _, b := range quoteBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, descs, entries, ok := decodeQuoteFast(string(body))
		if !ok {
			return
		}
		checkEntries(t, string(body), descs, entries)
		plain := plainQuote(body)
		if plain == nil || len(plain) != len(fast) {
			t.Fatalf("fast path takes %q, plain path gives %v", body, plain)
		}
		for i := range fast {
			if fast[i].Qty.String() != plain[i].Qty.String() || fast[i].Service != plain[i].Service ||
				!reflect.DeepEqual(wholeDesc(t, fast[i], descs[i]), plain[i].Desc) {
				t.Fatalf("%q: point %d = %+v, plain %+v", body, i, fast[i], plain[i])
			}
		}
		if got, want := answers(t, fast, descs, plain); !bytes.Equal(got, want) {
			t.Fatalf("%q: answer\n%s\nwant\n%s", body, got, want)
		}
	})
}

// TestQuoteAnswerMatchesWriteJSON: the fast answer is writeJSON's bytes.
func TestQuoteAnswerMatchesWriteJSON(t *testing.T) {
	points := []ratingbridge.QuotedPoint{
		{QuotePoint: ratingbridge.QuotePoint{Service: "instance", Qty: decimal.RequireFromString("0.5"), Unit: "hour",
			Desc: map[string]string{"size": "large", "b": "<&>", "a": "é\"\\\n"}}, Price: decimal.RequireFromString("0.04")},
		{QuotePoint: ratingbridge.QuotePoint{Service: "volume", Qty: decimal.NewFromInt(3), Unit: "GiB"}, Price: decimal.Zero},
		{QuotePoint: ratingbridge.QuotePoint{Service: "x", Qty: decimal.New(1, -30), Unit: "", Desc: map[string]string{}}, Price: decimal.New(5, 3)},
	}
	for n := range len(points) + 1 {
		total := decimal.RequireFromString(fmt.Sprint(n))
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, quoteResponse{Points: points[:n], Total: total})
		want := rec.Body.Bytes()
		if n == 0 {
			want = bytes.Replace(want, []byte(`"points":null`), []byte(`"points":[]`), 1)
		}
		if got := answer(t, points[:n], nil, total); !bytes.Equal(got, want) {
			t.Errorf("answer of %d points:\n%s\nwant\n%s", n, got, want)
		}
	}
	var back quoteResponse
	if err := json.Unmarshal(answer(t, points, nil, decimal.Zero), &back); err != nil {
		t.Fatal(err)
	}
	// An answer of many chunks, one point longer than a chunk among them.
	var many []ratingbridge.QuotedPoint
	for i := range 3000 {
		many = append(many, points[i%len(points)])
	}
	many[1500].Desc = map[string]string{"long": strings.Repeat("x", 2*quoteAnswerChunk)}
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, quoteResponse{Points: many, Total: decimal.NewFromInt(7)})
	var chunks chunkCounter
	manyPoints, rated := split(many, decimal.NewFromInt(7))
	if err := writeQuoteAnswer(&chunks, manyPoints, rated, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chunks.Bytes(), rec.Body.Bytes()) || chunks.writes < 3 {
		t.Errorf("answer of %d points in %d writes differs from writeJSON's", len(many), chunks.writes)
	}
}

// chunkCounter is a buffer that counts the writes into it.
type chunkCounter struct {
	bytes.Buffer
	writes int
}

func (c *chunkCounter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

// quoteRules is a pipeline's settings (none stored) and hashmap rules.
type quoteRules struct{ rules hashmap.RuleSet }

func (quoteRules) ListRatingModules(context.Context) ([]*store.RatingModule, error) { return nil, nil }
func (quoteRules) PutRatingModule(context.Context, *store.RatingModule) error       { return nil }
func (q quoteRules) HashmapRules(context.Context) (*hashmap.RuleSet, error) {
	return &q.rules, nil
}

// opaque is a module that does not say which desc keys it reads.
type opaque struct{}

func (opaque) Name() string                                                { return "opaque" }
func (opaque) Description() string                                         { return "reads any key" }
func (opaque) Default() ratingbridge.Setting                               { return ratingbridge.Setting{Enabled: true} }
func (o opaque) Load(context.Context) (ratingbridge.FrameProcessor, error) { return o, nil }
func (opaque) Process(context.Context, *dataframe.DataFrame) error         { return nil }

// TestDescMaps: a desc kept as text becomes a map of the keys the rating
// reads, shared by the points of a service that agree on them; the whole
// desc when a module does not say what it reads.
func TestDescMaps(t *testing.T) {
	ctx := context.Background()
	src := quoteRules{hashmap.RuleSet{
		Services: []*hashmap.Service{{ID: "s", Name: "instance"}, {ID: "v", Name: "volume"}},
		Fields:   []*hashmap.Field{{ID: "f1", ServiceID: "s", Name: "size"}, {ID: "f2", ServiceID: "s", Name: "region"}},
		Mappings: []*hashmap.Mapping{
			{ID: "m1", FieldID: "f1", Value: "small", Type: "flat", Cost: decimal.New(1, -2)},
			{ID: "m2", FieldID: "f2", Value: "r2", Type: "rate", Cost: decimal.New(2, 0)},
		},
	}}
	// The descs as a body writes them: all but one (white space) as the
	// answer does, so decodeQuoteFast keeps them as text.
	descs := []string{
		`{"machine_id":"a","region":"r1","size":"small"}`,
		`{"machine_id":"b","region":"r1","size":"small"}`,
		`{"machine_id":"c","size":"small"}`,
		`{"machine_id":"d","size":"small"}`,
		`{"region":"r1","size":"small"}`,
		`{}`,
		`{"size":"large", "x":"y"}`,
		`{"machine_id":"size","xsize":"small"}`,
		`{"size":""}`,
		`{"region":"size","size":"region"}`,
	}
	services := []string{"instance", "instance", "instance", "instance", "volume", "other", "instance", "instance", "instance", "instance"}
	var body strings.Builder
	body.WriteString(`{"points":[`)
	for i, d := range descs {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"service":%q,"qty":1,"desc":%s}`, services[i], d)
	}
	body.WriteString("]}")
	for _, tc := range []struct {
		name    string
		modules []ratingbridge.Module
		want    []map[string]string
		shared  [][2]int
	}{
		{"hashmap", ratingbridge.DefaultModules(src), []map[string]string{
			{"region": "r1", "size": "small"}, {"region": "r1", "size": "small"}, {"size": "small"}, {"size": "small"},
			{}, {}, {"size": "large", "x": "y"},
			{}, {"size": ""}, {"region": "size", "size": "region"},
		}, [][2]int{{0, 1}, {2, 3}}},
		{"opaque module", append(ratingbridge.DefaultModules(src), opaque{}), []map[string]string{
			{"machine_id": "a", "region": "r1", "size": "small"}, {"machine_id": "b", "region": "r1", "size": "small"},
			{"machine_id": "c", "size": "small"}, {"machine_id": "d", "size": "small"}, {"region": "r1", "size": "small"},
			{}, {"size": "large", "x": "y"},
			{"machine_id": "size", "xsize": "small"}, {"size": ""}, {"region": "size", "size": "region"},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ratingbridge.NewPipeline(src, tc.modules...)
			if err != nil {
				t.Fatal(err)
			}
			ps, texts, entries, ok := decodeQuoteFast(body.String())
			if !ok || len(ps) != len(descs) || texts[5] != "{}" || texts[6] != "" {
				t.Fatalf("decode %s: %v %q", body.String(), ok, texts)
			}
			rating, err := p.LoadQuote(ctx)
			if err != nil {
				t.Fatal(err)
			}
			descMaps(rating, body.String(), ps, texts, entries)
			for i, w := range tc.want {
				if !reflect.DeepEqual(ps[i].Desc, w) {
					t.Errorf("point %d (%s %s): desc %v, want %v", i, services[i], descs[i], ps[i].Desc, w)
				}
			}
			for _, pair := range tc.shared {
				if reflect.ValueOf(ps[pair[0]].Desc).UnsafePointer() != reflect.ValueOf(ps[pair[1]].Desc).UnsafePointer() {
					t.Errorf("points %d and %d do not share their desc", pair[0], pair[1])
				}
			}
			for _, pair := range [][2]int{{1, 2}, {7, 8}, {8, 9}} {
				if reflect.ValueOf(ps[pair[0]].Desc).UnsafePointer() == reflect.ValueOf(ps[pair[1]].Desc).UnsafePointer() {
					t.Errorf("points %d and %d differ in a key read but share a desc", pair[0], pair[1])
				}
			}
		})
	}
}
