package kloud

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/store"
)

// Config is everything a Server needs. Zero values take the defaults noted,
// except in the pointer fields, where 0 means 0 and only nil takes the
// default: there an explicit 0 is a setting of its own.
type Config struct {
	// DataDir holds the SQLite file, the key file, admin.token, working
	// directories, sandbox machines and reports.
	DataDir string
	// Store is the opened store; the server closes it on Close.
	Store store.Store
	// StoreName is shown by /healthz ("sqlite", "mongodb").
	StoreName string
	// URL is where machine agents reach this server (http://127.0.0.1:8080).
	URL string
	// AdvertiseURL is where other replicas reach this one, to relay a
	// terminal request to the replica holding the machine's tunnel
	// (default URL).
	AdvertiseURL string
	// AdminToken, when set, is the admin's token; otherwise one is generated
	// at first start and written to <DataDir>/admin.token.
	AdminToken string
	// TerraformPath and PluginDir locate Terraform and the provider mirror.
	TerraformPath string
	PluginDir     string
	// KlientPath is the agent binary served to machines at
	// GET /api/v1/agent/klient (none when empty).
	KlientPath string
	// Workers is how many jobs run at once (default 4).
	Workers int
	// WorkerID names this server in job leases (default host:pid).
	WorkerID string
	// JobLease is how long a claimed job's lease lasts between renewals
	// (default 30s).
	JobLease time.Duration
	// ShutdownGrace is how long Close lets running jobs finish before it
	// interrupts them (nil: 30s; 0: interrupt them at once).
	ShutdownGrace *time.Duration
	// CheckInterval is how often the machine checker runs (default 30s);
	// AgentTimeout is how long an agent may stay silent before its machine
	// is checked and marked Stopped (default 2m); IdleLimit stops a machine
	// that is not always_on after that long without activity (0: never).
	CheckInterval time.Duration
	AgentTimeout  time.Duration
	IdleLimit     time.Duration
	// HeartbeatInterval is the interval between an agent's heartbeats
	// that this server asks for in its answer to every register and
	// heartbeat (default 10s, capped at a third of AgentTimeout so a live
	// agent never reads silent).
	HeartbeatInterval time.Duration
	// RatingPeriod is the rating period (default 1h); RatingWaitPeriods how
	// many periods must pass after a period's end before it is rated (nil:
	// 1; 0: rate it as soon as it closes); RatingInterval how often the
	// processor runs (default 1m).
	RatingPeriod      time.Duration
	RatingWaitPeriods *int
	RatingInterval    time.Duration
	// Currency names the unit of the hashmap's prices in cost estimates
	// (default USD).
	Currency string
	// NetworkMirror is a Terraform provider network mirror for providers
	// the plugin mirror does not hold (cloud providers); empty: none.
	NetworkMirror string
	// SandboxRoot holds the sandbox machines of every credential
	// (<SandboxRoot>/<credential id>/machines/<id>; default
	// <DataDir>/sandbox); a credential's data_dir (admin only) must be
	// inside it or one of SandboxAllowedRoots.
	SandboxRoot         string
	SandboxAllowedRoots []string
	// Confiner runs Terraform and sandbox machines confined (default:
	// confine.Unconfined(); kloud serve detects bubblewrap and refuses to
	// start without it unless --unconfined).
	Confiner *confine.Confiner
	// ---- bounded work: job timeouts, cancel, fair share --------------------
	// JobTimeout bounds each job, and each template plan (kind "plan"), by
	// kind (default 30m each); past it the job's context ends, Terraform
	// gets an interrupt, then a kill after TerraformGrace, and the job
	// fails with the reason.
	JobTimeout JobTimeouts
	// TerraformGrace is how long an interrupted Terraform may take to stop
	// before it is killed (default 30s).
	TerraformGrace time.Duration
	// DriftInterval is how often every initialized stack without a job
	// gets a drift check (a refresh-only plan); 0 (the default) never.
	DriftInterval time.Duration
	// MaxJobsPerOwner is how many jobs of one owner may run at once, over
	// every replica (default half the workers, at least 1); it also bounds
	// one owner's concurrent template plans on each replica.
	MaxJobsPerOwner int
	// AuditRetention is how long audit entries are kept (0: forever; kloud
	// serve defaults to 90 days); one replica prunes older ones hourly.
	AuditRetention time.Duration
	// SoleServer says no other server uses the store (SQLite, whose data
	// dir is locked): at start every running job belongs to a dead worker
	// and is failed at once instead of when its lease expires.
	SoleServer bool
	// Cost sets the loops of cost control: budgets, schedules, webhooks.
	Cost CostConfig

	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives structured logs (default slog.Default()).
	Log *slog.Logger
}

// check refuses settings that make no sense whatever the defaults: a
// negative duration or count.
func (c *Config) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"job lease", c.JobLease}, {"check interval", c.CheckInterval}, {"agent timeout", c.AgentTimeout},
		{"idle limit", c.IdleLimit}, {"audit retention", c.AuditRetention}, {"rating period", c.RatingPeriod}, {"rating interval", c.RatingInterval},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s %v is negative", d.name, d.v)
		}
	}
	if c.ShutdownGrace != nil && *c.ShutdownGrace < 0 {
		return fmt.Errorf("shutdown grace %v is negative", *c.ShutdownGrace)
	}
	if c.Workers < 0 {
		return fmt.Errorf("workers %d is negative", c.Workers)
	}
	if c.RatingWaitPeriods != nil && *c.RatingWaitPeriods < 0 {
		return fmt.Errorf("rating wait periods %d is negative", *c.RatingWaitPeriods)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.AdvertiseURL == "" {
		c.AdvertiseURL = c.URL
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.JobLease <= 0 {
		c.JobLease = 30 * time.Second
	}
	if c.ShutdownGrace == nil {
		c.ShutdownGrace = new(30 * time.Second)
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.AgentTimeout <= 0 {
		c.AgentTimeout = 2 * time.Minute
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	c.HeartbeatInterval = min(c.HeartbeatInterval, c.AgentTimeout/3)
	if c.RatingPeriod <= 0 {
		c.RatingPeriod = time.Hour
	}
	if c.RatingWaitPeriods == nil {
		c.RatingWaitPeriods = new(1)
	}
	if c.RatingInterval <= 0 {
		c.RatingInterval = time.Minute
	}
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if c.TerraformGrace <= 0 {
		c.TerraformGrace = 30 * time.Second
	}
	if c.MaxJobsPerOwner <= 0 {
		c.MaxJobsPerOwner = max(1, c.Workers/2)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Confiner == nil {
		c.Confiner = confine.Unconfined()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.StoreName == "" {
		c.StoreName = "sqlite"
	}
}

// DefaultJobTimeout bounds a job of a kind JobTimeouts does not name.
const DefaultJobTimeout = 30 * time.Minute

// jobTimeoutKinds are the kinds a timeout may name: the job kinds and
// "plan" (a template plan).
var jobTimeoutKinds = []string{
	string(jobs.KindApply), string(jobs.KindDestroy), string(jobs.KindBootstrap), string(jobs.KindUnbootstrap),
	string(jobs.KindStart), string(jobs.KindStop), "plan", string(jobs.KindDrift),
}

// JobTimeouts is a default job timeout and overrides per kind, written
// "30m,apply=1h,stop=5m" (the default first, optional). It is a flag.Value.
type JobTimeouts struct {
	Default time.Duration
	Kinds   map[string]time.Duration
}

// For returns the timeout of a job of kind.
func (t JobTimeouts) For(kind string) time.Duration {
	if d, ok := t.Kinds[kind]; ok {
		return d
	}
	if t.Default > 0 {
		return t.Default
	}
	return DefaultJobTimeout
}

// String writes t as Set reads it.
func (t *JobTimeouts) String() string {
	if t == nil {
		return ""
	}
	parts := []string{t.For("").String()}
	for _, k := range jobTimeoutKinds {
		if d, ok := t.Kinds[k]; ok {
			parts = append(parts, k+"="+d.String())
		}
	}
	return strings.Join(parts, ",")
}

// Set reads "30m,apply=1h,stop=5m": each part a positive duration, named by
// a job kind or (at most one) the default.
func (t *JobTimeouts) Set(v string) error {
	out := JobTimeouts{Kinds: map[string]time.Duration{}}
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		kind, val, named := strings.Cut(part, "=")
		if !named {
			kind, val = "", part
		}
		kind = strings.TrimSpace(kind)
		d, err := time.ParseDuration(strings.TrimSpace(val))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration (e.g. 30m, or apply=1h)", clipInput(part))
		}
		switch {
		case !named && out.Default != 0:
			return fmt.Errorf("two default timeouts in %q", clipInput(v))
		case !named:
			out.Default = d
		case !slices.Contains(jobTimeoutKinds, kind):
			return fmt.Errorf("unknown job kind %q; allowed: %s", clipInput(kind), strings.Join(jobTimeoutKinds, ", "))
		default:
			out.Kinds[kind] = d
		}
	}
	*t = out
	return nil
}
