package kloud_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/errdefs"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/kloud/kloudtest"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

type summary struct {
	Total   int      `json:"total"`
	Columns []string `json:"columns"`
	Results [][]any  `json:"results"`
}

// column returns the decimal in row's named column.
func (s summary) column(t *testing.T, row []any, name string) decimal.Decimal {
	t.Helper()
	for i, c := range s.Columns {
		if c == name {
			d, err := decimal.NewFromString(fmt.Sprint(row[i]))
			if err != nil {
				t.Fatalf("column %s = %v: %v", name, row[i], err)
			}
			return d
		}
	}
	t.Fatalf("no column %s in %v", name, s.Columns)
	return decimal.Decimal{}
}

// TestBillingEndToEnd runs a sandbox machine for a measured time on a clock
// the test moves, stops it, rates the closed periods and checks the bill:
// the machine is billed the hours it ran (within a second) at the
// configured rate, and the CSV report's total is the summary's.
func TestBillingEndToEnd(t *testing.T) {
	clock := &kloudtest.Clock{}
	h := kloudtest.New(t, func(c *kloud.Config) {
		c.Now = clock.Now
		c.RatingInterval = time.Hour // the test triggers processing itself
		c.AgentTimeout = 24 * time.Hour
	})
	ctx := context.Background()
	admin := h.Admin

	// Price: 0.12 an hour for a small machine, 0.30 for a medium one.
	svcID := priceSizes(t, admin)
	// A service mapping with a value is refused, naming the field.
	err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/mappings", map[string]string{"service_id": svcID, "value": "x", "type": "flat", "cost": "1"}, nil)
	if apiStatus(err) != http.StatusUnprocessableEntity {
		t.Errorf("service mapping with a value: %v, want 422", err)
	}

	credID, tplID := setup(t, admin)
	plan, err := admin.PlanTemplate(ctx, tplID, client.PlanRequest{CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	if plan.CostEstimate.Hourly != "0.42" {
		t.Errorf("estimate = %+v, want 0.42 an hour (0.12 + 0.30)", plan.CostEstimate)
	}

	st, err := admin.CreateStack(ctx, client.CreateStackRequest{Title: "billed", TemplateID: tplID, CredentialID: credID})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := admin.ApplyStack(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	st, _ = admin.Stack(ctx, st.ID)
	var web client.Machine
	for _, m := range st.Machines {
		if strings.Contains(m.Label, "web") {
			web = m
		}
	}

	clock.Advance(90 * time.Minute)
	ref, err = admin.StopMachine(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	kloudtest.WaitJob(t, admin, ref.JobID)
	m, err := admin.Machine(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	ran := decimal.NewFromInt(m.UptimeSeconds).Div(decimal.NewFromInt(3600))

	// Let every period holding the run close, then rate.
	clock.Advance(3 * time.Hour)
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/process", nil, nil); err != nil {
		t.Fatal(err)
	}

	var byMachine summary
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/summary?groupby=machine_id&filters=machine_id:"+web.ID, nil, &byMachine); err != nil {
		t.Fatal(err)
	}
	if byMachine.Total != 1 {
		t.Fatalf("summary of the web machine = %+v", byMachine)
	}
	qty := byMachine.column(t, byMachine.Results[0], "qty")
	if diff := qty.Sub(ran).Abs(); diff.GreaterThan(decimal.NewFromFloat(1.0 / 3600)) {
		t.Errorf("billed %s hours, ran %s hours", qty, ran)
	}
	if !qty.GreaterThanOrEqual(decimal.NewFromFloat(1.49)) {
		t.Errorf("billed %s hours; the machine ran about 1.5", qty)
	}
	rate := byMachine.column(t, byMachine.Results[0], "rate")
	if want := qty.Mul(decimal.RequireFromString("0.12")); !rate.Equal(want) {
		t.Errorf("price %s, want qty × 0.12 = %s", rate, want)
	}

	// Members see none of it.
	member := h.Member(t, "carol")
	var theirs summary
	if err := member.Do(ctx, http.MethodGet, "/api/v1/rating/summary", nil, &theirs); err != nil {
		t.Fatal(err)
	}
	if theirs.Total != 0 {
		t.Errorf("member summary = %+v, want nothing", theirs)
	}

	// The CSV report's total is the summary's total.
	var all summary
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/summary", nil, &all); err != nil {
		t.Fatal(err)
	}
	summaryTotal := all.column(t, all.Results[0], "rate")
	var reports []struct {
		Name   string `json:"name"`
		Format string `json:"format"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/reports", nil, &reports); err != nil {
		t.Fatal(err)
	}
	csvTotal := decimal.Zero
	found := 0
	for _, r := range reports {
		if r.Format != "csv" {
			continue
		}
		found++
		var buf bytes.Buffer
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/reports/"+r.Name, nil, &buf); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("report %s: %v", r.Name, err)
		}
		last := rows[len(rows)-1]
		if last[0] != "total" {
			t.Fatalf("report %s has no totals row: %v", r.Name, last)
		}
		csvTotal = csvTotal.Add(decimal.RequireFromString(last[len(last)-1]))
	}
	if found == 0 {
		t.Fatalf("no CSV report among %+v", reports)
	}
	if !csvTotal.Equal(summaryTotal) {
		t.Errorf("CSV total %s != summary total %s", csvTotal, summaryTotal)
	}

	// A quote prices like the stored frames.
	var quote struct {
		Total decimal.Decimal `json:"total"`
	}
	body := map[string]any{"points": []map[string]any{{"service": "instance", "qty": "2", "unit": "hour", "desc": map[string]string{"size": "medium"}}}}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/quote", body, &quote); err != nil {
		t.Fatal(err)
	}
	if !quote.Total.Equal(decimal.RequireFromString("0.6")) {
		t.Errorf("quote of 2 medium hours = %s, want 0.6", quote.Total)
	}
}

// TestHashmapAPI drives the hashmap rules API: CloudKitty's shapes, ids
// under their names, validation naming the field, 404 for unknown ids.
func TestHashmapAPI(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	admin := h.Admin
	var svc struct {
		ID string `json:"service_id"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/services", map[string]string{"name": "instance"}, &svc); err != nil || svc.ID == "" {
		t.Fatalf("create service: %v %+v", err, svc)
	}
	var th struct {
		ID    string `json:"threshold_id"`
		Level string `json:"level"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/thresholds", map[string]any{"service_id": svc.ID, "level": "50", "type": "rate", "cost": "0.98"}, &th); err != nil || th.ID == "" || th.Level != "50" {
		t.Fatalf("create threshold: %v %+v", err, th)
	}
	var m struct {
		ID   string `json:"mapping_id"`
		Cost string `json:"cost"`
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/modules/hashmap/mappings", map[string]any{"service_id": svc.ID, "type": "flat", "cost": 0.001}, &m); err != nil || m.ID == "" {
		t.Fatalf("create mapping: %v %+v", err, m)
	}
	if err := admin.Do(ctx, http.MethodPut, "/api/v1/rating/modules/hashmap/mappings/"+m.ID, map[string]any{"service_id": svc.ID, "type": "flat", "cost": "0.002"}, &m); err != nil || m.Cost != "0.002" {
		t.Fatalf("update mapping: %v %+v", err, m)
	}
	// The design's reference: flat 0.002 (here) with a rate threshold at 50.
	var quote struct {
		Total string `json:"total"`
	}
	body := map[string]any{"points": []map[string]any{{"service": "instance", "qty": "80", "unit": "hour"}}}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/rating/quote", body, &quote); err != nil || quote.Total != "0.1568" {
		t.Errorf("quote 80 × 0.002 × 0.98 = %+v, %v; want 0.1568", quote, err)
	}
	member := h.Member(t, "dave")
	bad := []struct {
		name   string
		c      *client.Client
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"field mapping without value", admin, "POST", "mappings", map[string]any{"field_id": "fld-x", "type": "flat", "cost": "1"}, 422, "value"},
		{"cost not a decimal", admin, "POST", "mappings", map[string]any{"service_id": svc.ID, "type": "flat", "cost": "lots"}, 422, "cost"},
		{"bad type", admin, "POST", "mappings", map[string]any{"service_id": svc.ID, "type": "fancy", "cost": "1"}, 422, "type"},
		{"unknown service", admin, "POST", "mappings", map[string]any{"service_id": "svc-nope", "type": "flat", "cost": "1"}, 404, ""},
		{"threshold without level", admin, "POST", "thresholds", map[string]any{"service_id": svc.ID, "type": "flat", "cost": "1"}, 422, "level"},
		{"field of unknown service", admin, "POST", "fields", map[string]any{"service_id": "svc-nope", "name": "size"}, 404, ""},
		{"duplicate service", admin, "POST", "services", map[string]any{"name": "instance"}, 409, ""},
		{"unknown mapping", admin, "GET", "mappings/map-nope", nil, 404, ""},
		{"member may not change rules", member, "POST", "services", map[string]any{"name": "x"}, 403, ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Do(ctx, tt.method, "/api/v1/rating/modules/hashmap/"+tt.path, tt.body, nil)
			var e *client.Error
			if !errors.As(err, &e) || e.Status != tt.status || (tt.field != "" && e.Field != tt.field) {
				t.Errorf("%v (%+v), want %d naming %q", err, e, tt.status, tt.field)
			}
		})
	}
	if err := admin.Do(ctx, http.MethodDelete, "/api/v1/rating/modules/hashmap/services/"+svc.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/rating/modules/hashmap/thresholds/"+th.ID, nil, nil); apiStatus(err) != 404 {
		t.Errorf("threshold of a deleted service: %v, want 404", err)
	}
}

// TestQuoteFastAndPlainPathsAnswerAlike: one quote sent as encoding/json
// writes it (the fast path: descs kept as text, pricing maps of the keys
// the rules read), with its descs' keys out of order (the fast path with
// whole maps) and with an escape in it (the plain path) gets the same
// answer, byte for byte, from rules with field mappings, a field
// threshold and a service threshold.
func TestQuoteFastAndPlainPathsAnswerAlike(t *testing.T) {
	h := kloudtest.New(t)
	ctx := context.Background()
	c := h.Admin
	svc, err := c.CreateHashmapService(ctx, client.NameRequest{Name: "instance"})
	if err != nil {
		t.Fatal(err)
	}
	size, err := c.CreateHashmapField(ctx, client.FieldRequest{ServiceID: svc.ID, Name: "size"})
	if err != nil {
		t.Fatal(err)
	}
	region, err := c.CreateHashmapField(ctx, client.FieldRequest{ServiceID: svc.ID, Name: "region"})
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := c.CreateHashmapField(ctx, client.FieldRequest{ServiceID: svc.ID, Name: "cpus"})
	if err != nil {
		t.Fatal(err)
	}
	rules := []client.MappingRequest{
		{FieldID: size.ID, Value: "small", Type: "flat", Cost: decimal.RequireFromString("0.01")},
		{FieldID: size.ID, Value: "large", Type: "flat", Cost: decimal.RequireFromString("0.08")},
		{FieldID: region.ID, Value: "eu", Type: "rate", Cost: decimal.RequireFromString("1.2")},
	}
	for _, m := range rules {
		if _, err := c.CreateHashmapMapping(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, th := range []client.ThresholdRequest{
		{FieldID: cpus.ID, Level: decimal.NewFromInt(4), Type: "flat", Cost: decimal.RequireFromString("0.003")},
		{ServiceID: svc.ID, Level: decimal.NewFromInt(10), Type: "rate", Cost: decimal.RequireFromString("0.9")},
	} {
		if _, err := c.CreateHashmapThreshold(ctx, th); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []string{"small", "large", "medium", ""}
	regions := []string{"eu", "us", ""}
	var points []client.QuotePoint
	for i := range 300 {
		desc := map[string]string{"machine_id": fmt.Sprintf("m-%03d", i)}
		if s := sizes[i%len(sizes)]; s != "" || i%8 == 3 {
			desc["size"] = s
		}
		if r := regions[i%len(regions)]; r != "" {
			desc["region"] = r
		}
		if i%5 != 0 {
			desc["cpus"] = fmt.Sprint(i % 9)
		}
		p := client.QuotePoint{Service: "instance", Qty: decimal.New(int64(i%13), -1).Add(decimal.NewFromInt(int64(i % 3 * 5))), Desc: desc}
		switch i % 10 {
		case 4:
			p.Service = "volume"
		case 7:
			p.Unit = "hour"
		case 9:
			p.Desc = nil
		}
		points = append(points, p)
	}
	body, err := json.Marshal(client.QuoteRequest{Points: points})
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte) []byte {
		t.Helper()
		status, out := raw(t, h, h.AdminToken, http.MethodPost, "/api/v1/rating/quote", string(body))
		if status != http.StatusOK {
			t.Fatalf("quote: %d %s", status, out)
		}
		return out
	}
	fast := post(body)
	var q client.Quote
	if err := json.Unmarshal(fast, &q); err != nil || len(q.Points) != len(points) || q.Total.IsZero() {
		t.Fatalf("answer %.200s: %v", fast, err)
	}
	// The same points with each desc's keys in descending order.
	reversed := []byte(`{"points":[`)
	for i, p := range points {
		if i > 0 {
			reversed = append(reversed, ',')
		}
		head, _ := json.Marshal(client.QuotePoint{Service: p.Service, Qty: p.Qty, Unit: p.Unit})
		reversed = append(reversed, head[:len(head)-1]...)
		if p.Desc != nil {
			keys := slices.Sorted(maps.Keys(p.Desc))
			slices.Reverse(keys)
			reversed = append(reversed, `,"desc":{`...)
			for j, k := range keys {
				if j > 0 {
					reversed = append(reversed, ',')
				}
				reversed = fmt.Appendf(reversed, "%q:%q", k, p.Desc[k])
			}
			reversed = append(reversed, '}')
		}
		reversed = append(reversed, '}')
	}
	reversed = append(reversed, "]}"...)
	for name, variant := range map[string][]byte{
		"desc keys out of order": reversed,
		"escaped (plain path)":   bytes.Replace(body, []byte(`"instance"`), []byte(`"instanc\u0065"`), 1),
	} {
		if bytes.Equal(variant, body) {
			t.Fatalf("%s: the same body", name)
		}
		if got := post(variant); !bytes.Equal(got, fast) {
			t.Errorf("%s: answer differs from the fast path's:\n%.300s\nwant\n%.300s", name, got, fast)
		}
	}
}

// TestQuoteRefusals: what a quote refuses, with its status, message and
// field, whichever way the body is read.
func TestQuoteRefusals(t *testing.T) {
	h := kloudtest.New(t)
	point := `{"service":"s","qty":1}`
	tooMany := `{"points":[` + strings.Repeat(point+",", 10000) + point + `]}`
	for _, tc := range []struct {
		name, body string
		status     int
		error      string
		field      string
	}{
		{"empty body", ``, 400, "request body is empty; a JSON object is required", ""},
		{"cut short", `{"points":[{"service":"s","qty":1`, 400, "invalid JSON: unexpected end of body", ""},
		{"unknown field", `{"points":[{"service":"s","qty":1,"bogus":1}]}`, 400, `unknown field "bogus"`, "bogus"},
		{"unknown top field", `{"points":[{"service":"s","qty":1}],"when":"now"}`, 400, `unknown field "when"`, "when"},
		{"service not a string", `{"points":[{"service":5,"qty":1}]}`, 400, `field "points.service" must be a string, not number`, "points.service"},
		{"desc value not a string", `{"points":[{"service":"s","qty":1,"desc":{"a":1}}]}`, 400, `field "points.desc" must be a string, not number`, "points.desc"},
		{"points not a list", `{"points":{}}`, 400, `field "points" must be a list, not object`, "points"},
		{"trailing data", `{"points":[{"service":"s","qty":1}]} x`, 400, "invalid JSON: data after the object", ""},
		{"qty a boolean", `{"points":[{"service":"s","qty":true}]}`, 422, "points[0].qty must be a decimal number or string", "points[0].qty"},
		{"qty not a number", `{"points":[{"service":"s","qty":"abc"}]}`, 422, `points[0].qty "abc" is not a decimal number`, "points[0].qty"},
		{"qty negative", `{"points":[{"service":"s","qty":"1"},{"service":"s","qty":-1}]}`, 422, "points[1].qty must not be negative", "points[1].qty"},
		{"qty missing", `{"points":[{"service":"s"}]}`, 422, "points[0].qty is required", "points[0].qty"},
		{"service missing", `{"points":[{"qty":1}]}`, 422, "points[0].service: required", "points[0].service"},
		{"service empty", `{"points":[{"service":"s","qty":1},{"service":"","qty":1,"desc":{"a":"b"}}]}`, 422, "points[1].service: required", "points[1].service"},
		{"no points", `{"points":[]}`, 422, "points must hold at least one point", "points"},
		{"points twice", `{"points":[{"service":"s","qty":1}],"points":[]}`, 422, "points must hold at least one point", "points"},
		{"too many points", tooMany, 422, "points: at most 10000 points", "points"},
		{"oversized", `{"points":[` + strings.Repeat(" ", 1<<20) + `]}`, 413, "request body larger than 1048576 bytes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := raw(t, h, h.AdminToken, http.MethodPost, "/api/v1/rating/quote", tc.body)
			var body struct {
				Error string `json:"error"`
				Field string `json:"field"`
			}
			if err := json.Unmarshal(answer, &body); err != nil {
				t.Fatalf("%d %s: %v", status, answer, err)
			}
			if status != tc.status || body.Error != tc.error || body.Field != tc.field {
				t.Errorf("%d %q (field %q), want %d %q (field %q)", status, body.Error, body.Field, tc.status, tc.error, tc.field)
			}
		})
	}
}

// failingModules is a store whose rating module settings cannot be read
// while fail is set.
type failingModules struct {
	store.Store
	fail *atomic.Bool
}

func (f failingModules) ListRatingModules(ctx context.Context) ([]*store.RatingModule, error) {
	if f.fail.Load() {
		return nil, fmt.Errorf("list rating modules: %w", errdefs.ErrUnavailable)
	}
	return f.Store.ListRatingModules(ctx)
}

// TestQuoteBodyErrorsBeforeStoreErrors: a quote whose pipeline cannot be
// loaded answers the body's error when the body has one, the store's
// otherwise, on either decoding path.
func TestQuoteBodyErrorsBeforeStoreErrors(t *testing.T) {
	var fail atomic.Bool
	h := kloudtest.NewOn(t, func(dataDir string) (store.Store, error) {
		st, err := sqlite.Open(context.Background(), dataDir)
		return failingModules{st, &fail}, err
	})
	fail.Store(true)
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"valid", `{"points":[{"service":"s","qty":1,"desc":{"a":"b"}}]}`, 503},
		{"valid, plain path", `{"points":[{"service":"\u0073","qty":1}]}`, 503},
		{"unknown field", `{"points":[{"service":"s","qty":1,"x":1}]}`, 400},
		{"no service", `{"points":[{"qty":1,"desc":{"a":"b"}}]}`, 422},
		{"no service, plain path", `{"points":[{"qty":1,"desc":{"\u0061":"b"}}]}`, 422},
		{"negative qty", `{"points":[{"service":"s","qty":-1}]}`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := raw(t, h, h.AdminToken, http.MethodPost, "/api/v1/rating/quote", tc.body); status != tc.status {
				t.Errorf("status %d (%s), want %d", status, body, tc.status)
			}
		})
	}
	fail.Store(false)
	if status, body := raw(t, h, h.AdminToken, http.MethodPost, "/api/v1/rating/quote", `{"points":[{"service":"s","qty":1}]}`); status != http.StatusOK {
		t.Errorf("store back: %d %s", status, body)
	}
}
