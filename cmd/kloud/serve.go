package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kloud/kloud/kloud"
	_ "github.com/kloud/kloud/provider/aws"          // EC2
	_ "github.com/kloud/kloud/provider/digitalocean" // droplets
	_ "github.com/kloud/kloud/provider/sandbox"      // the embedded default provider
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/mongo"
	"github.com/kloud/kloud/store/sqlite"
)

// env returns the KLOUD_ variable name or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("KLOUD_" + name); ok && v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := env(name, ""); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := env(name, ""); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func defaultDataDir() string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "kloud")
}

// besideBinary returns name beside the running kloud binary.
func besideBinary(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), name)
}

// findTerraform looks in KLOUD_TERRAFORM (the flag's default), PATH, then
// beside the kloud binary.
func findTerraform(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	for _, name := range []string{"terraform", "tofu"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if p := besideBinary("terraform"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("terraform not found: set KLOUD_TERRAFORM, put terraform on PATH, or run ./build.sh build")
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", env("DATA_DIR", defaultDataDir()), "data directory (KLOUD_DATA_DIR)")
	listen := fs.String("listen", env("LISTEN", "127.0.0.1:8080"), "listen address (KLOUD_LISTEN)")
	storeURI := fs.String("store", env("STORE", "sqlite"), "store: sqlite or a mongodb:// URI (KLOUD_STORE)")
	workers := fs.Int("workers", envInt("WORKERS", 4), "concurrent Terraform runs (KLOUD_WORKERS)")
	publicURL := fs.String("url", env("URL", ""), "URL machine agents reach this server at (KLOUD_URL; default from --listen)")
	terraform := fs.String("terraform", env("TERRAFORM", ""), "terraform binary (KLOUD_TERRAFORM)")
	klientPath := fs.String("klient", env("KLIENT", besideBinary("klient")), "agent binary served to machines (KLOUD_KLIENT)")
	pluginDir := fs.String("plugin-dir", env("PLUGIN_DIR", besideBinary("plugins")), "provider mirror (KLOUD_PLUGIN_DIR)")
	jobLease := fs.Duration("job-lease", envDuration("JOB_LEASE", 30*time.Second), "job lease length (KLOUD_JOB_LEASE)")
	grace := fs.Duration("shutdown-grace", envDuration("SHUTDOWN_GRACE", 30*time.Second), "how long shutdown lets jobs finish (KLOUD_SHUTDOWN_GRACE)")
	checkInterval := fs.Duration("check-interval", envDuration("CHECK_INTERVAL", 30*time.Second), "machine checker interval (KLOUD_CHECK_INTERVAL)")
	agentTimeout := fs.Duration("agent-timeout", envDuration("AGENT_TIMEOUT", 2*time.Minute), "silence after which a machine is checked (KLOUD_AGENT_TIMEOUT)")
	idleLimit := fs.Duration("idle-limit", envDuration("IDLE_LIMIT", 0), "stop machines that are not always_on after this long running (0: never; KLOUD_IDLE_LIMIT)")
	ratingPeriod := fs.Duration("rating-period", envDuration("RATING_PERIOD", time.Hour), "rating period (KLOUD_RATING_PERIOD)")
	ratingWait := fs.Int("rating-wait-periods", envInt("RATING_WAIT_PERIODS", 1), "periods to wait before rating one (KLOUD_RATING_WAIT_PERIODS)")
	ratingInterval := fs.Duration("rating-interval", envDuration("RATING_INTERVAL", time.Minute), "how often the rating processor runs (KLOUD_RATING_INTERVAL)")
	sandboxRoot := fs.String("sandbox-root", env("SANDBOX_ROOT", ""), "sandbox machines of every credential, <root>/<credential id> (KLOUD_SANDBOX_ROOT; default <data-dir>/sandbox)")
	logLevel := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (KLOUD_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	tf, err := findTerraform(*terraform)
	if err != nil {
		return err
	}
	st, storeName, err := openStore(ctx, *storeURI, *dataDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		st.Close()
		return fmt.Errorf("listen: %w", err)
	}
	url := *publicURL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	srv, err := kloud.New(ctx, kloud.Config{
		DataDir: *dataDir, Store: st, StoreName: storeName, URL: url,
		AdminToken: os.Getenv("KLOUD_ADMIN_TOKEN"), TerraformPath: tf, PluginDir: *pluginDir, KlientPath: *klientPath,
		Workers: *workers, JobLease: *jobLease, ShutdownGrace: *grace,
		CheckInterval: *checkInterval, AgentTimeout: *agentTimeout, IdleLimit: *idleLimit,
		RatingPeriod: *ratingPeriod, RatingWaitPeriods: *ratingWait, RatingInterval: *ratingInterval,
		SandboxRoot: *sandboxRoot,
		Log:         log,
	})
	if err != nil {
		ln.Close()
		st.Close()
		return err
	}
	if srv.AdminToken != "" {
		// Printed once, on stdout only; never logged.
		fmt.Printf("admin token: %s\n(also written to %s)\n", srv.AdminToken, filepath.Join(*dataDir, "admin.token"))
	}
	// The URL file lets scripts and the CLI on this host find a server
	// started on a random port.
	if err := os.WriteFile(filepath.Join(*dataDir, "server.url"), []byte(url+"\n"), 0o600); err != nil {
		log.Warn("write server.url", slog.String("error", err.Error()))
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv.Start()
	log.Info("kloud serving", slog.String("url", url), slog.String("store", storeName), slog.String("data_dir", *dataDir))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down: no new jobs; running jobs get the shutdown grace", slog.Duration("grace", *grace))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutdownCtx)
	if cerr := srv.Close(); cerr != nil {
		log.Error("close", slog.String("error", cerr.Error()))
	}
	log.Info("kloud stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// openStore opens the store a --store value names.
func openStore(ctx context.Context, uri, dataDir string) (store.Store, string, error) {
	switch {
	case uri == "" || uri == "sqlite":
		st, err := sqlite.Open(ctx, dataDir)
		if err != nil {
			return nil, "", fmt.Errorf("open sqlite store: %w", err)
		}
		return st, "sqlite", nil
	case strings.HasPrefix(uri, "mongodb://") || strings.HasPrefix(uri, "mongodb+srv://"):
		// The database is the URI's path; the secret key comes from
		// KLOUD_SECRET_KEY or the data dir's key file, and every replica
		// on one database must use the same key.
		st, err := mongo.Open(ctx, uri, dataDir)
		if err != nil {
			return nil, "", fmt.Errorf("open mongodb store: %w", err)
		}
		return st, "mongodb", nil
	}
	return nil, "", fmt.Errorf("--store %q: want sqlite or a mongodb:// URI", uri)
}
