package kloud

import (
	"errors"
	"net/http"
	"testing"

	"github.com/kloud/kloud/client"
)

func TestDecodeBytes(t *testing.T) {
	tests := []struct {
		name, body, field string
		ok                bool
	}{
		{"object", `{"name":"a","role":"member"}`, "", true},
		{"empty", ``, "", false},
		{"spaces", "  \n", "", false},
		{"syntax", `{"name":`, "", false},
		{"wrong type", `{"name":3}`, "name", false},
		{"unknown field", `{"nope":1}`, "nope", false},
		{"trailing", `{"name":"a"} {}`, "", false},
		{"array", `[]`, "", false},
		{"null", `null`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req client.CreateUserRequest
			err := decodeBytes([]byte(tt.body), &req)
			if (err == nil) != tt.ok {
				t.Fatalf("decodeBytes(%q) = %v, want ok=%v", tt.body, err, tt.ok)
			}
			if err == nil {
				return
			}
			var re *RequestError
			if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Field != tt.field || re.Message == "" {
				t.Errorf("decodeBytes(%q) = %#v, want a 400 naming %q", tt.body, err, tt.field)
			}
		})
	}
}

// FuzzDecodeBytes: request decoding never panics and every failure is a
// 4xx with a message.
func FuzzDecodeBytes(f *testing.F) {
	for _, seed := range []string{`{"provider":"sandbox","title":"t","data":{}}`, `{"points":[{"qty":"1"}]}`, `{`, `[1,2]`, `{"data":null}`, "\x00"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{&client.CreateCredentialRequest{}, &client.CreateStackRequest{}, &client.CreateTemplateRequest{}, &quoteRequest{}, &ruleRequest{}}
		for _, v := range targets {
			err := decodeBytes(body, v)
			if err == nil {
				continue
			}
			status, e := errorBody(err)
			if status < 400 || status >= 500 || e.Message == "" {
				t.Fatalf("decodeBytes(%q) → %d %q", body, status, e.Message)
			}
		}
	})
}
