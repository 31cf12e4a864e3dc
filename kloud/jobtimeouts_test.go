package kloud_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud"
)

func TestJobTimeoutsParse(t *testing.T) {
	cases := []struct {
		in       string
		apply    time.Duration
		stop     time.Duration
		plan     time.Duration
		wantErr  string
		asString string
	}{
		{in: "30m", apply: 30 * time.Minute, stop: 30 * time.Minute, plan: 30 * time.Minute, asString: "30m0s"},
		{in: "30m,apply=1h,stop=5m", apply: time.Hour, stop: 5 * time.Minute, plan: 30 * time.Minute, asString: "30m0s,apply=1h0m0s,stop=5m0s"},
		{in: "plan=2m", apply: kloud.DefaultJobTimeout, stop: kloud.DefaultJobTimeout, plan: 2 * time.Minute, asString: "30m0s,plan=2m0s"},
		{in: " 10m , stop = 1m ", apply: 10 * time.Minute, stop: time.Minute, plan: 10 * time.Minute},
		{in: "soon", wantErr: `"soon" is not a positive duration`},
		{in: "0s", wantErr: "not a positive duration"},
		{in: "-5m", wantErr: "not a positive duration"},
		{in: "apply=", wantErr: "not a positive duration"},
		{in: "30m,1h", wantErr: "two default timeouts"},
		{in: "reboot=5m", wantErr: `unknown job kind "reboot"; allowed: apply, destroy`},
		{in: strings.Repeat("x", 5000) + "=5m", wantErr: "unknown job kind"},
		{in: "", wantErr: "not a positive duration"},
	}
	for _, c := range cases {
		t.Run(c.in[:min(len(c.in), 20)], func(t *testing.T) {
			var jt kloud.JobTimeouts
			err := jt.Set(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Set(%q) = %v, want error containing %q", c.in, err, c.wantErr)
				}
				if len(err.Error()) > 200 {
					t.Errorf("error quotes too much input: %d characters", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%q): %v", c.in, err)
			}
			for kind, want := range map[string]time.Duration{"apply": c.apply, "stop": c.stop, "plan": c.plan} {
				if got := jt.For(kind); got != want {
					t.Errorf("For(%s) = %v, want %v", kind, got, want)
				}
			}
			if c.asString != "" && jt.String() != c.asString {
				t.Errorf("String() = %q, want %q", jt.String(), c.asString)
			}
		})
	}
	var zero kloud.JobTimeouts
	if got := zero.For("apply"); got != kloud.DefaultJobTimeout {
		t.Errorf("zero JobTimeouts.For(apply) = %v, want %v", got, kloud.DefaultJobTimeout)
	}
}
