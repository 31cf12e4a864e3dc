package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kloud/kloud/kloud"
)

// serveFlags is what `kloud serve` runs with: every flag and KLOUD_*
// variable, parsed and checked. Config holds the settings that go to
// kloud.Config as they are (explicit zeros included).
type serveFlags struct {
	DataDir, Listen, Store, URL  string
	Terraform, Klient, PluginDir string
	Level                        slog.Level
	// Unconfined runs members' Terraform and machines without
	// confinement.
	Unconfined bool
	Config     kloud.Config
}

// defineServeFlags declares every flag of `kloud serve`. Each flag's
// default comes from its KLOUD_* variable (the flag name upper-cased,
// dashes as underscores) when that is set; a variable that does not parse
// or is out of range is returned in envErrs, naming the variable and the
// flag. A new flag is one more line here and one more row in the test.
func defineServeFlags(lookupEnv func(string) (string, bool)) (fs *flag.FlagSet, f *serveFlags, envErrs []error) {
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	f = &serveFlags{
		DataDir: defaultDataDir(), Listen: "127.0.0.1:8080", Store: "sqlite",
		Klient: besideBinary("klient"), PluginDir: besideBinary("plugins"), Level: slog.LevelInfo,
	}
	c := &f.Config
	c.Workers, c.JobLease, c.CheckInterval, c.AgentTimeout = 4, 30*time.Second, 30*time.Second, 2*time.Minute
	c.RatingPeriod, c.RatingInterval = time.Hour, time.Minute
	c.ShutdownGrace, c.RatingWaitPeriods = new(30*time.Second), new(1)
	c.TerraformGrace, c.HeartbeatInterval = 30*time.Second, 10*time.Second
	c.Cost.BudgetInterval, c.Cost.ScheduleInterval, c.Cost.WebhookInterval, c.Cost.WebhookBackoff = 30*time.Second, 15*time.Second, 5*time.Second, 5*time.Second
	c.AuditRetention = 90 * 24 * time.Hour

	add := func(name string, v flag.Value, usage string) {
		envName := "KLOUD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if s, ok := lookupEnv(envName); ok && s != "" {
			if err := v.Set(s); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s (--%s): %w", envName, name, err))
			}
		}
		fs.Var(v, name, usage+" ("+envName+")")
	}
	add("data-dir", text(&f.DataDir, nonEmpty), "data directory")
	add("listen", text(&f.Listen, hostPort), "listen address")
	add("store", text(&f.Store, storeURI), "store: sqlite or a mongodb:// URI")
	add("url", text(&f.URL, httpURL), "URL machine agents reach this server at (default from --listen)")
	add("terraform", text(&f.Terraform, nil), "terraform binary (default: PATH, then beside kloud)")
	add("klient", text(&f.Klient, nil), "agent binary served to machines")
	add("plugin-dir", text(&f.PluginDir, nil), "provider mirror")
	add("log-level", &value[slog.Level]{p: &f.Level, parse: parseLevel}, "debug, info, warn or error")
	add("workers", integer(&c.Workers, 1), "concurrent Terraform runs (at least 1)")
	add("job-lease", duration(&c.JobLease, false), "job lease length")
	add("shutdown-grace", duration(c.ShutdownGrace, true), "how long shutdown lets jobs finish (0: interrupt them at once)")
	add("check-interval", duration(&c.CheckInterval, false), "machine checker interval")
	add("agent-timeout", duration(&c.AgentTimeout, false), "silence after which a machine is checked")
	add("heartbeat-interval", duration(&c.HeartbeatInterval, false), "interval between agent heartbeats, told to every agent (at most a third of --agent-timeout)")
	add("idle-limit", duration(&c.IdleLimit, true), "stop machines that are not always_on after this long idle (0: never)")
	add("rating-period", duration(&c.RatingPeriod, false), "rating period")
	add("rating-wait-periods", integer(c.RatingWaitPeriods, 0), "periods to wait before rating one (0: rate a period as soon as it closes)")
	add("rating-interval", duration(&c.RatingInterval, false), "how often the rating processor runs")
	add("job-timeout", &c.JobTimeout, "job timeout, a default and per kind, e.g. 30m,apply=1h,stop=5m,plan=5m (default 30m)")
	add("max-jobs-per-owner", integer(&c.MaxJobsPerOwner, 1), "running jobs (and template plans) of one owner at most (default half the workers, at least 1)")
	add("terraform-grace", duration(&c.TerraformGrace, false), "how long an interrupted Terraform may take to stop before it is killed")
	add("drift-interval", duration(&c.DriftInterval, true), "check every initialized stack for drift (a refresh-only plan) this often (0: never)")
	add("sandbox-root", text(&c.SandboxRoot, absPath), "sandbox machines of every credential, <root>/<credential id> (default <data-dir>/sandbox)")
	add("unconfined", boolean(&f.Unconfined), "run members' Terraform and sandbox machines WITHOUT confinement: they can then run code as Kloud's user and read its data dir")
	add("budget-interval", duration(&c.Cost.BudgetInterval, false), "how often budgets are checked")
	add("schedule-interval", duration(&c.Cost.ScheduleInterval, false), "how often machine schedules are looked at")
	add("webhook-interval", duration(&c.Cost.WebhookInterval, false), "how often due webhook deliveries are tried")
	add("webhook-backoff", duration(&c.Cost.WebhookBackoff, false), "wait after a failed webhook delivery, doubled after each further one (retried for an hour)")
	add("advertise-url", text(&c.AdvertiseURL, httpURL), "URL other replicas reach this one at, to relay a terminal to the replica holding the machine's tunnel (default http://<listen address>)")
	add("audit-retention", duration(&c.AuditRetention, true), "how long audit entries are kept (0: forever)")
	add("network-mirror", text(&c.NetworkMirror, httpURL), "Terraform provider network mirror URL for cloud providers (default: none, only the plugin mirror)")
	return fs, f, envErrs
}

// parseServeFlags parses the arguments of `kloud serve` over its KLOUD_*
// variables. Anything that does not parse, or makes no sense (a negative
// duration, 0 workers), is an error naming the flag or the variable.
func parseServeFlags(args []string, lookupEnv func(string) (string, bool), usageOut io.Writer) (*serveFlags, error) {
	fs, f, envErrs := defineServeFlags(lookupEnv)
	fs.SetOutput(usageOut)
	if err := errors.Join(envErrs...); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("kloud serve takes no arguments, got %s", strconv.Quote(clip(fs.Arg(0))))
	}
	return f, nil
}

// value is a flag.Value of any type: parse turns the text into a T,
// check (when set) refuses values that make no sense.
type value[T any] struct {
	p     *T
	parse func(string) (T, error)
	check func(T) error
}

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	if v.check != nil {
		if err := v.check(x); err != nil {
			return err
		}
	}
	*v.p = x
	return nil
}

func (v *value[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return fmt.Sprint(*v.p)
}

func text(p *string, check func(string) error) *value[string] {
	return &value[string]{p: p, parse: func(s string) (string, error) { return s, nil }, check: check}
}

// boolValue is a flag that may be given without a value (--unconfined).
type boolValue struct{ *value[bool] }

func (boolValue) IsBoolFlag() bool { return true }

func boolean(p *bool) boolValue {
	return boolValue{&value[bool]{p: p, parse: func(s string) (bool, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return false, fmt.Errorf("%s is not true or false", strconv.Quote(clip(s)))
		}
		return b, nil
	}}}
}

func integer(p *int, least int) *value[int] {
	return &value[int]{p: p, parse: func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer", strconv.Quote(clip(s)))
		}
		return n, nil
	}, check: func(n int) error {
		if n < least {
			return fmt.Errorf("%d is less than %d", n, least)
		}
		return nil
	}}
}

// duration parses a Go duration (30s, 5m, 1h); zeroOK says whether 0
// means something for this flag. Negative durations are always refused.
func duration(p *time.Duration, zeroOK bool) *value[time.Duration] {
	return &value[time.Duration]{p: p, parse: func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%s is not a duration (e.g. 30s, 5m, 1h)", strconv.Quote(clip(s)))
		}
		return d, nil
	}, check: func(d time.Duration) error {
		switch {
		case d < 0:
			return fmt.Errorf("%v is negative", d)
		case d == 0 && !zeroOK:
			return errors.New("0 is not allowed: give a positive duration")
		}
		return nil
	}}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("%s is not one of debug, info, warn, error", strconv.Quote(clip(s)))
	}
	return l, nil
}

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func absPath(s string) error {
	if s != "" && !filepath.IsAbs(s) {
		return fmt.Errorf("%s is not an absolute path", strconv.Quote(clip(s)))
	}
	return nil
}

func hostPort(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%s is not host:port", strconv.Quote(clip(s)))
	}
	return nil
}

func storeURI(s string) error {
	if s == "sqlite" || strings.HasPrefix(s, "mongodb://") || strings.HasPrefix(s, "mongodb+srv://") {
		return nil
	}
	return fmt.Errorf("%s: want sqlite or a mongodb:// URI", strconv.Quote(clip(s)))
}

func httpURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s is not an http:// or https:// URL", strconv.Quote(clip(s)))
	}
	return nil
}

// clip shortens what the user typed to at most 64 characters for an error
// message.
func clip(s string) string {
	const max = 64
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
