package kloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kloud/kloud/kloud/authcache"
	"github.com/kloud/kloud/kloud/checker"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/kloud/listcache"
	"github.com/kloud/kloud/kloud/rater"
	"github.com/kloud/kloud/kloud/singleton"
	"github.com/kloud/kloud/provider/sandbox"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/stack/terraform"
	"github.com/kloud/kloud/store"
)

// Server is one Kloud replica: the HTTP API over the store, the job workers,
// the machine checker and the rating processor.
type Server struct {
	cfg    Config
	st     store.Store
	log    *slog.Logger
	runner *terraform.Runner
	// rating prices, rates closed periods and writes reports; checker
	// watches machines' agents and idleness; lists caches encoded machine
	// lists; users whom tokens belong to.
	rating  *rater.Rater
	checker *checker.Checker
	lists   *listcache.Machines
	users   *authcache.Users
	// sandbox is the sandbox provider's host: its machines and control API.
	sandbox *sandbox.Host
	mux     *http.ServeMux
	// sessions seals the web dashboard's session cookies; web serves the
	// dashboard itself.
	sessions *sessionKeeper
	web      http.Handler
	// cost is cost control: budgets, schedules, webhooks.
	cost *costControl

	// AdminToken is the admin token generated at this first start ("" when
	// the admin already existed or the token was configured).
	AdminToken string

	engine  *jobs.Engine // queues, runs and follows jobs
	loops   loopSet      // the singleton loops running now (readiness)
	metrics *metrics     // Prometheus metrics of this replica
	plans   *ownerLimit  // template plans running per owner

	mu       sync.Mutex
	started  bool
	closing  bool
	bgCancel context.CancelFunc
	bgDone   sync.WaitGroup // background loops

	dirLock *dataDirLock // held from New to Close

	// tunnels are the agents' tunnels this replica holds; terms the
	// terminal sessions it serves; bg ends (bgStop) when the server
	// closes, ending what lives on hijacked connections.
	tunnels *tunnels
	terms   *termRegistry
	bg      context.Context
	bgStop  context.CancelFunc
}

// New opens a server on cfg. It locks the data dir (a second server on it
// is refused with ErrDataDirInUse), makes sure an admin exists and fails
// the jobs whose worker died while this or another replica was down.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	cfg.setDefaults()
	if cfg.Store == nil {
		return nil, errors.New("new server: a store is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("new server: a data dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	// The data dir holds the database, the key and machines' disks: only
	// Kloud's user may look in.
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	if !cfg.Confiner.Enabled() {
		cfg.Log.Warn("running UNCONFINED: members' templates and machines can run code as Kloud's own user and read its data dir")
	}
	// Lock before anything touches the data dir: reaping orphans would
	// kill another live server's Terraform runs.
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	defer func() {
		if err != nil {
			_ = lock.release()
		}
	}()
	if cfg.WorkerID == "" {
		host, _ := os.Hostname()
		cfg.WorkerID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Log,
		plans:   newOwnerLimit(cfg.MaxJobsPerOwner),
		dirLock: lock,
		tunnels: newTunnels(),
		terms:   newTermRegistry(),
	}
	s.bg, s.bgStop = context.WithCancel(context.Background())
	s.lists = listcache.New(cfg.Store, func(ms []*stack.Machine, at time.Time) ([]byte, error) {
		return appendMachines(make([]byte, 0, len(ms)*machineSize), s.machineViews(ms, at))
	})
	s.metrics = newMetrics(s)
	// Every machine change this server makes shows in its lists at once;
	// store calls are timed.
	s.st = s.metrics.timeStore(listcache.Watch(cfg.Store, s.lists))
	// Whom a token belongs to is read once a second, and again at once
	// after a user change made here.
	s.users = authcache.New(s.st.GetUserByTokenHash, cfg.Now)
	s.st = authcache.Watch(s.st, s.users)
	runner, err := terraform.NewRunner(terraform.RunnerConfig{
		TerraformPath: cfg.TerraformPath,
		PluginDir:     cfg.PluginDir,
		WorkRoot:      filepath.Join(cfg.DataDir, "work"),
		Log:           cfg.Log,
		Confiner:      cfg.Confiner,
		NetworkMirror: cfg.NetworkMirror,
		GracePeriod:   cfg.TerraformGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s.runner = runner
	if s.engine, err = s.newEngine(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	reapOrphans(filepath.Join(cfg.DataDir, "work"), cfg.Log)
	if s.sandbox, err = s.newSandboxHost(); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	fail := func(err error) (*Server, error) {
		s.sandbox.Close()
		return nil, fmt.Errorf("new server: %w", err)
	}
	token, err := s.ensureAdmin(ctx)
	if err != nil {
		return fail(err)
	}
	s.AdminToken = token
	if s.rating, err = rater.New(rater.Config{
		Store:       s.st,
		ReportsDir:  filepath.Join(cfg.DataDir, "reports"),
		Period:      cfg.RatingPeriod,
		WaitPeriods: *cfg.RatingWaitPeriods,
		Leases:      s.st,
		Holder:      cfg.WorkerID,
		Interval:    cfg.RatingInterval,
		Now:         cfg.Now,
		Log:         cfg.Log,
		Observe:     s.metrics.RatingPass,
	}); err != nil {
		return fail(err)
	}
	s.checker = newChecker(s)
	s.loops.expect(checker.LeaseName, rater.LeaseName)
	s.cost = newCostControl(s)
	if err := s.engine.FailDeadAtStart(ctx); err != nil {
		return fail(err)
	}
	// Before any worker runs: machines no record or state knows go.
	if err := s.checker.ReconcileSandbox(ctx); err != nil {
		s.log.Error("reconcile sandbox machines", slog.String("error", err.Error()))
	}
	s.closeStaleSessions(ctx)
	s.routes()
	return s, nil
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// bgContext ends when the server closes.
func (s *Server) bgContext() context.Context { return s.bg }

// Start runs the job workers, the machine checker and the rating processor
// until Close.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	s.engine.Start()
	s.goBackground(func() { s.loops.run(checker.LeaseName, func() { s.checker.Run(ctx) }) })
	s.goBackground(func() { s.loops.run(rater.LeaseName, func() { s.rating.Run(ctx) }) })
	s.runCost(ctx)
	if s.cfg.DriftInterval > 0 {
		s.goBackground(func() { s.runDriftChecks(ctx, s.cfg.DriftInterval) })
	}
	prune := &singleton.Loop{Name: "audit-retention", Holder: s.cfg.WorkerID, Interval: time.Hour, Leases: s.st, Now: s.cfg.Now, Log: s.log}
	s.goBackground(func() {
		prune.Run(ctx, func(ctx context.Context) error { s.pruneAudit(ctx); return nil })
	})
}

func (s *Server) goBackground(f func()) {
	s.bgDone.Add(1)
	go func() {
		defer s.bgDone.Done()
		f()
	}()
}

// Close stops taking jobs, lets running jobs finish for the shutdown grace,
// interrupts those still running (Terraform gets an interrupt, then a kill),
// records what it did, and closes the store.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	if s.bgCancel != nil {
		s.bgCancel()
	}
	s.mu.Unlock()
	s.bgStop()
	s.terms.closeAll()
	s.tunnels.closeAll()
	s.bgDone.Wait()
	s.engine.Close(*s.cfg.ShutdownGrace)
	s.sandbox.Close()
	err := s.st.Close()
	if lerr := s.dirLock.release(); lerr != nil && err == nil {
		err = fmt.Errorf("release data dir lock: %w", lerr)
	}
	return err
}
