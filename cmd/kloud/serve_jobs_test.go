package main

import (
	"strings"
	"testing"
)

// TestServeRefusesBadJobFlags: an unparsable job timeout, as a flag or in
// KLOUD_JOB_TIMEOUT, stops `kloud serve` before it opens anything, naming
// where the value came from.
func TestServeRefusesBadJobFlags(t *testing.T) {
	cases := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"flag not a duration", "", []string{"--job-timeout", "soon"}, "job-timeout"},
		{"flag unknown kind", "", []string{"--job-timeout", "30m,reboot=1m"}, `unknown job kind "reboot"`},
		{"env", "apply=never", nil, "KLOUD_JOB_TIMEOUT"},
		{"max per owner", "", []string{"--max-jobs-per-owner", "two"}, "max-jobs-per-owner"},
		{"terraform grace", "", []string{"--terraform-grace", "1 minute"}, "terraform-grace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KLOUD_JOB_TIMEOUT", c.env)
			dataDir := t.TempDir()
			err := serve(append([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:0"}, c.args...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("serve %v = %v, want an error naming %q", c.args, err, c.want)
			}
		})
	}
}
