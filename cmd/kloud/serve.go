package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/kloud"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/mongo"
	"github.com/kloud/kloud/store/sqlite"
)

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
	f, err := parseServeFlags(args, os.LookupEnv, os.Stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: f.Level}))
	// Everything Kloud and its children create is private to its user:
	// the data dir holds secrets, states and machines' disks.
	syscall.Umask(0o077)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(f.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	tf, err := findTerraform(f.Terraform)
	if err != nil {
		return err
	}
	confiner := confine.Unconfined()
	if f.Unconfined {
		log.Warn("--unconfined: members' templates and sandbox machines run as Kloud's own user and can read everything it can, its data dir included")
		fmt.Fprintln(os.Stderr, "WARNING: kloud serve --unconfined: members can run code as this user and read its data dir")
	} else if confiner, err = confine.Detect(ctx, confine.Options{}); err != nil {
		return fmt.Errorf("%w\nkloud serve runs members' Terraform and machines confined; without bubblewrap it refuses to start unless --unconfined is given", err)
	}
	st, storeName, err := openStore(ctx, f.Store, f.DataDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		st.Close()
		return fmt.Errorf("listen: %w", err)
	}
	url := f.URL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	cfg := f.Config
	if cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = "http://" + ln.Addr().String()
	}
	cfg.DataDir, cfg.Store, cfg.StoreName, cfg.URL = f.DataDir, st, storeName, url
	cfg.AdminToken, cfg.TerraformPath, cfg.PluginDir, cfg.KlientPath = os.Getenv("KLOUD_ADMIN_TOKEN"), tf, f.PluginDir, f.Klient
	cfg.Log, cfg.Confiner = log, confiner
	cfg.SoleServer = storeName == "sqlite" // the only server on its data dir (locked)
	srv, err := kloud.New(ctx, cfg)
	if err != nil {
		ln.Close()
		st.Close()
		return err
	}
	if srv.AdminToken != "" {
		// Printed once, on stdout only; never logged.
		fmt.Printf("admin token: %s\n(also written to %s)\n", srv.AdminToken, filepath.Join(f.DataDir, "admin.token"))
	}
	// The URL file lets scripts and the CLI on this host find a server
	// started on a random port.
	if err := os.WriteFile(filepath.Join(f.DataDir, "server.url"), []byte(url+"\n"), 0o600); err != nil {
		log.Warn("write server.url", slog.String("error", err.Error()))
	}
	hs := kloud.NewHTTPServer(srv.Handler(), kloud.HTTPOptions{})
	srv.Start()
	log.Info("kloud serving", slog.String("url", url), slog.String("store", storeName), slog.String("data_dir", f.DataDir), slog.String("confinement", confiner.String()))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down: no new jobs; running jobs get the shutdown grace", slog.Duration("grace", *f.Config.ShutdownGrace))
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
			return nil, "", err // "open store <path>: ..." already
		}
		return st, "sqlite", nil
	case strings.HasPrefix(uri, "mongodb://") || strings.HasPrefix(uri, "mongodb+srv://"):
		// The database is the URI's path; the secret key comes from
		// KLOUD_SECRET_KEY or the data dir's key file, and every replica
		// on one database must use the same key.
		st, err := mongo.Open(ctx, uri, dataDir)
		if err != nil {
			return nil, "", err // "open mongodb store <db>: ..." already
		}
		return st, "mongodb", nil
	}
	return nil, "", fmt.Errorf("--store %q: want sqlite or a mongodb:// URI", uri)
}
