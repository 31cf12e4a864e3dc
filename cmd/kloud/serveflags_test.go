package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// serveFlagCases holds, for every flag of `kloud serve`, a value that does
// not parse (or makes no sense), and what 0 does: "" when 0 is refused too,
// otherwise a check of the parsed flags. TestServeFlagsTableCoversEveryFlag
// keeps the table complete.
var serveFlagCases = []struct {
	flag string
	bad  string
	zero func(f *serveFlags) bool // nil: 0 is refused
}{
	{flag: "data-dir", bad: " "},
	{flag: "listen", bad: "no-port"},
	{flag: "store", bad: "postgres://x"},
	{flag: "url", bad: "ftp://x"},
	{flag: "terraform", bad: ""},
	{flag: "klient", bad: ""},
	{flag: "plugin-dir", bad: ""},
	{flag: "log-level", bad: "loud"},
	{flag: "workers", bad: "four"},
	{flag: "job-lease", bad: "30"},
	{flag: "shutdown-grace", bad: "-1s", zero: func(f *serveFlags) bool { return *f.Config.ShutdownGrace == 0 }},
	{flag: "check-interval", bad: "often"},
	{flag: "agent-timeout", bad: "-2m"},
	{flag: "heartbeat-interval", bad: "fast"},
	{flag: "idle-limit", bad: "1 hour", zero: func(f *serveFlags) bool { return f.Config.IdleLimit == 0 }},
	{flag: "rating-period", bad: "1d"},
	{flag: "rating-wait-periods", bad: "1.5", zero: func(f *serveFlags) bool { return *f.Config.RatingWaitPeriods == 0 }},
	{flag: "rating-interval", bad: "1m30"},
	{flag: "job-timeout", bad: "soon"},
	{flag: "max-jobs-per-owner", bad: "two"},
	{flag: "terraform-grace", bad: "-1s"},
	{flag: "drift-interval", bad: "hourly", zero: func(f *serveFlags) bool { return f.Config.DriftInterval == 0 }},
	{flag: "sandbox-root", bad: "relative/dir"},
	{flag: "unconfined", bad: "maybe", zero: func(f *serveFlags) bool { return !f.Unconfined }},
	{flag: "network-mirror", bad: "file:///x"},
	{flag: "budget-interval", bad: "often"},
	{flag: "schedule-interval", bad: "-1s"},
	{flag: "webhook-interval", bad: "2"},
	{flag: "webhook-backoff", bad: "soon"},
	{flag: "advertise-url", bad: "ftp://x"},
	{flag: "audit-retention", bad: "90d", zero: func(f *serveFlags) bool { return f.Config.AuditRetention == 0 }},
}

func noEnv(string) (string, bool) { return "", false }

func envOf(name, v string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		if k == name {
			return v, true
		}
		return "", false
	}
}

func envName(flag string) string {
	return "KLOUD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func TestServeFlagsTableCoversEveryFlag(t *testing.T) {
	fs, _, _ := defineServeFlags(noEnv)
	inTable := map[string]bool{}
	for _, c := range serveFlagCases {
		inTable[c.flag] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !inTable[f.Name] {
			t.Errorf("flag --%s has no row in serveFlagCases", f.Name)
		}
		if !strings.Contains(f.Usage, envName(f.Name)) {
			t.Errorf("flag --%s: usage %q does not name %s", f.Name, f.Usage, envName(f.Name))
		}
	})
}

func TestServeFlagsRefuseWhatDoesNotParse(t *testing.T) {
	for _, c := range serveFlagCases {
		if c.bad == "" {
			continue // a free-form path: any text is a value
		}
		t.Run(c.flag+"/flag", func(t *testing.T) {
			_, err := parseServeFlags([]string{"--" + c.flag + "=" + c.bad}, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "-"+c.flag) {
				t.Fatalf("--%s=%q: err = %v, want an error naming the flag", c.flag, c.bad, err)
			}
		})
		t.Run(c.flag+"/env", func(t *testing.T) {
			name := envName(c.flag)
			_, err := parseServeFlags(nil, envOf(name, c.bad), io.Discard)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "--"+c.flag) {
				t.Fatalf("%s=%q: err = %v, want an error naming %s and --%s", name, c.bad, err, name, c.flag)
			}
		})
	}
}

func TestServeFlagsZero(t *testing.T) {
	for _, c := range serveFlagCases {
		if c.bad == "" || c.flag == "log-level" || c.flag == "listen" || c.flag == "store" || c.flag == "url" || c.flag == "data-dir" || c.flag == "network-mirror" || c.flag == "advertise-url" || c.flag == "sandbox-root" {
			continue // not a number: 0 is just a bad value, covered above
		}
		t.Run(c.flag, func(t *testing.T) {
			for _, zero := range []string{"0", "0s"} {
				if zero == "0s" && (c.flag == "workers" || c.flag == "rating-wait-periods" || c.flag == "unconfined") {
					continue
				}
				for _, how := range []string{"flag", "env"} {
					args, env := []string{"--" + c.flag + "=" + zero}, noEnv
					if how == "env" {
						args, env = nil, envOf(envName(c.flag), zero)
					}
					f, err := parseServeFlags(args, env, io.Discard)
					switch {
					case c.zero == nil && err == nil:
						t.Errorf("%s %s=%s accepted; 0 makes no sense here", how, c.flag, zero)
					case c.zero == nil && !strings.Contains(err.Error(), c.flag):
						t.Errorf("%s %s=%s: err = %v, want it to name the flag", how, c.flag, zero, err)
					case c.zero != nil && err != nil:
						t.Errorf("%s %s=%s: %v, want 0 accepted", how, c.flag, zero, err)
					case c.zero != nil && !c.zero(f):
						t.Errorf("%s %s=%s: 0 did not survive parsing: %+v", how, c.flag, zero, f.Config)
					}
				}
			}
		})
	}
}

func TestServeFlagsDefaultsAndValues(t *testing.T) {
	f, err := parseServeFlags([]string{"--workers=2", "--rating-wait-periods=3", "--idle-limit=90m", "--log-level=debug"},
		envOf("KLOUD_JOB_LEASE", "45s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if c.Workers != 2 || *c.RatingWaitPeriods != 3 || c.IdleLimit != 90*time.Minute || c.JobLease != 45*time.Second ||
		*c.ShutdownGrace != 30*time.Second || c.RatingPeriod != time.Hour || f.Level.String() != "DEBUG" {
		t.Fatalf("parsed %+v, level %v", c, f.Level)
	}
	// A flag overrides its variable.
	f, err = parseServeFlags([]string{"--workers=3"}, envOf("KLOUD_WORKERS", "8"), io.Discard)
	if err != nil || f.Config.Workers != 3 {
		t.Fatalf("--workers=3 over KLOUD_WORKERS=8: %v, %v", f, err)
	}
}

func TestServeFlagsQuoteAtMost64Characters(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := parseServeFlags(nil, envOf("KLOUD_WORKERS", long), io.Discard)
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("err = %v (%d bytes), want a short error", err, len(err.Error()))
	}
}
