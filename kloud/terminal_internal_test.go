package kloud

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckOrigin: a cookie-authenticated upgrade (no bearer token) from
// a foreign page is 403; the server's own page, a client that sends no
// Origin, and any bearer request pass.
func TestCheckOrigin(t *testing.T) {
	tests := []struct {
		name, origin, auth string
		forbidden          bool
	}{
		{"cookie, same origin", "http://kloud.example:8080", "", false},
		{"cookie, foreign origin", "http://evil.example", "", true},
		{"cookie, same host other port", "http://kloud.example:9090", "", true},
		{"cookie, bad origin", "::nonsense", "", true},
		{"cookie, no origin", "", "", false},
		{"bearer, foreign origin", "http://evil.example", "Bearer klu_x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://kloud.example:8080/api/v1/machines/m-1/terminal", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			err := checkOrigin(r)
			if got := errors.Is(err, ErrForbidden); got != tt.forbidden {
				t.Fatalf("checkOrigin = %v, want forbidden %v", err, tt.forbidden)
			}
			if err != nil {
				if status, _ := errorBody(err); status != 403 {
					t.Fatalf("status %d, want 403", status)
				}
			}
		})
	}
}

// TestTerminalQuery: what ?session, ?cols, ?rows and ?command accept.
func TestTerminalQuery(t *testing.T) {
	tests := []struct {
		query, field string
	}{
		{"", ""},
		{"session=work-1.a_b&cols=80&rows=24", ""},
		{"command=sh&command=-c&command=exit+3", ""},
		{"session=a+b", "session"},
		{"session=" + strings.Repeat("s", 65), "session"},
		{"cols=0&rows=10", "cols"},
		{"cols=80&rows=x", "rows"},
		{"cols=80&rows=100000", "rows"},
		{"session=w&command=ls", "session"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/api/v1/machines/m/terminal?"+tt.query, nil)
		_, err := terminalQuery(r)
		var re *RequestError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%q: %v", tt.query, err)
		case tt.field != "" && (!errors.As(err, &re) || re.Field != tt.field || re.Status != 400):
			t.Errorf("%q: %v, want a 400 naming %s", tt.query, err, tt.field)
		}
	}
}
