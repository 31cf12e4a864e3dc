package kloud

import (
	"log/slog"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/store"
)

// Config is everything a Server needs. Zero values take the defaults noted.
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
	// interrupts them (default 30s).
	ShutdownGrace time.Duration
	// CheckInterval is how often the machine checker runs (default 30s);
	// AgentTimeout is how long an agent may stay silent before its machine
	// is checked and marked Stopped (default 2m); IdleLimit stops a machine
	// that is not always_on after that long without activity (0: never).
	CheckInterval time.Duration
	AgentTimeout  time.Duration
	IdleLimit     time.Duration
	// RatingPeriod is the rating period (default 1h); RatingWaitPeriods how
	// many periods must pass before one is rated (default 1);
	// RatingInterval how often the processor runs (default 1m).
	RatingPeriod      time.Duration
	RatingWaitPeriods int
	RatingInterval    time.Duration
	// Currency names the unit of the hashmap's prices in cost estimates
	// (default USD).
	Currency string
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
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives structured logs (default slog.Default()).
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.JobLease <= 0 {
		c.JobLease = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.AgentTimeout <= 0 {
		c.AgentTimeout = 2 * time.Minute
	}
	if c.RatingPeriod <= 0 {
		c.RatingPeriod = time.Hour
	}
	if c.RatingWaitPeriods <= 0 {
		c.RatingWaitPeriods = 1
	}
	if c.RatingInterval <= 0 {
		c.RatingInterval = time.Minute
	}
	if c.Currency == "" {
		c.Currency = "USD"
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
