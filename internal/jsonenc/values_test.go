package jsonenc

import (
	"encoding/json"
	"testing"
	"time"
)

// TestValuesMatchEncodingJSON: Time and Raw write what encoding/json
// writes, and fail where it fails.
func TestValuesMatchEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 30, 45, 123456789, time.UTC)
	times := []time.Time{
		{}, at, at.Truncate(time.Second), at.In(time.FixedZone("x", 5*3600+30*60)), at.In(time.FixedZone("s", 61)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), at.Local(),
	}
	for _, tm := range times {
		want, wantErr := json.Marshal(tm)
		got, err := Time([]byte("x"), tm)
		if (err != nil) != (wantErr != nil) || err == nil && string(got) != "x"+string(want) {
			t.Errorf("Time(%v) = %s, %v; want x%s, %v", tm, got, err, want, wantErr)
		}
	}
	raws := []json.RawMessage{
		nil, {}, json.RawMessage(`{}`), json.RawMessage(`{"size":"small","n":[1,2.5,true,null]}`),
		json.RawMessage(" { \"a\" :\n1 }\t"), json.RawMessage(`"<&>"`), json.RawMessage("\"\u2028é\""),
		json.RawMessage(`{"a":`), json.RawMessage(`{} {}`), json.RawMessage(`nul`), json.RawMessage("\xff"),
	}
	for _, raw := range raws {
		want, wantErr := json.Marshal(raw)
		got, err := Raw([]byte("x"), raw)
		if (err != nil) != (wantErr != nil) || err == nil && string(got) != "x"+string(want) {
			t.Errorf("Raw(%q) = %s, %v; want x%s, %v", raw, got, err, want, wantErr)
		}
	}
}
