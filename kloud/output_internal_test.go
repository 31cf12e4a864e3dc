package kloud

import "testing"

func TestKloudAttributeLine(t *testing.T) {
	attrs := []string{"kloud_url", "agent_token"}
	tests := []struct {
		line  string
		attrs []string
		want  bool
	}{
		{`      + kloud_url   = "http://127.0.0.1:8080"`, attrs, true},
		{`      + agent_token = (sensitive value)`, attrs, true},
		{`      ~ kloud_url   = "http://a" -> "http://b"`, attrs, true},
		{`      - agent_token = (sensitive value) -> null`, attrs, true},
		{`        kloud_url   = "http://a"`, attrs, true},
		{`      + name        = "web-0"`, attrs, false},
		{`      + kloud_url_extra = "x"`, attrs, false},
		{`  # sandbox_machine.web[0] will be created`, attrs, false},
		{`echo kloud_url is set`, attrs, false},
		{`      + kloud_url   = "http://127.0.0.1:8080"`, nil, false},
		{``, attrs, false},
	}
	for _, tt := range tests {
		if got := kloudAttributeLine(tt.line, tt.attrs); got != tt.want {
			t.Errorf("kloudAttributeLine(%q, %v) = %v, want %v", tt.line, tt.attrs, got, tt.want)
		}
	}
}
